# The PlainMamba Mask R-CNN 1x recipe around a backbone that is NOT the paper's. Source: ChenhongyiYang/PlainMamba
# (0975a1d0d8bc) downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l{1,2,3}_maskrcnn_1x.py over
# template/maskrcnn_1x.py (mmdet 2.x): AdamW lr 1e-4, wd 0.05, no decay on norms / biases / pos_embed / A_log / D /
# direction_Bs (and the adapter's level_embed), 12 epochs (lr x0.1 at 8, 11), 1333 x 800, flip, training set
# with images without annotations kept (filter_empty_gt=False), SyncBN FPN, Shared4Conv1FC box head with SyncBN
# and L1 loss, 4-conv mask head without norm, RPN 1000 proposals per image in training; 2 images x 8 GPUs (README:
# tools/dist_train.sh ... 8).
#
# Not reproduced: the backbone. The README's numbers are for PlainMamba-Adapter (type='PlainMambaAdapter',
# downstream/mmdetection/mmdet/models/backbones/plain_mamba_adapter.py + adapter_modules.py, a ViT-Adapter), which
# the zoo does not implement. What it adds around the plain blocks:
# - SpatialPriorModule: conv stem (3x3 s2 64 + two 3x3 64, SyncBN, ReLU, max pool) then 3x3 s2 convs to 128, 256,
#   256 channels -> c1..c4 at strides 4 / 8 / 16 / 32, each 1x1-projected to embed_dims; level_embed (3, D) added
#   to c2..c4, which are flattened into one token set;
# - 4 InteractionBlocks over the block ranges interaction_indexes ([[0,5],[6,11],[12,17],[18,23]]; L3
#   [[0,8],[9,17],[18,26],[27,35]]): an Injector (LN eps 1e-6 on query / feature, multi-scale deformable attention
#   from the stride-16 tokens into c2..c4, 3 levels, n_points 4, deform_num_heads 6 (L3: 8), deform_ratio 1.0,
#   output scaled by a learnable gamma initialised to 0) before the range, the PlainMamba blocks of the range, then
#   an Extractor (deformable attention from c2..c4 into the tokens, 1 level, + ConvFFN: fc -> 3x3 depthwise conv
#   per level -> GELU -> fc, hidden = 0.25 D, drop path = the backbone's rate); 2 extra Extractors in the last block;
# - outputs: c1 + deconv2x2(c2), c2, c3, c4, each plus the final tokens resized bilinearly to its stride (x4, x2,
#   x1, x0.5), each through its own SyncBN (ad_norm1..4); no final norm (final_norm=False); conv_inplane 64.
# The deformable-attention op itself exists in mmcv 2.1.0 (mmcv.ops.MultiScaleDeformableAttnFunction on CUDA,
# multi_scale_deformable_attn_pytorch elsewhere); what the zoo lacks is the adapter modules above and a way to run
# a PlainMamba model's blocks range by range between them (ZooBackbone only calls forward_intermediates).
# Here the plain backbone reaches FPN through the simple pyramid instead (four evenly spaced blocks -> strides
# 4..32, hustvl/Vim-style deconvs with SyncBN), so these configs claim no number.
# A variant config sets model_name, out_indices, drop_path_rate, init_cfg and the neck channels.
_base_ = ['./mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(type='PlainMambaBackbone', model_name='plainmamba_l1', pyramid='simple',
                  norm_cfg=dict(type='SyncBN')),
    neck=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=dict(type='SyncBN', requires_grad=True)),
        mask_head=dict(num_convs=4)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'pos_embed': dict(decay_mult=0.),
    'norm': dict(decay_mult=0.),
    'bias': dict(decay_mult=0.),
    '.A_log': dict(decay_mult=0.),
    '.D': dict(decay_mult=0.),
    '.direction_Bs': dict(decay_mult=0.),
}))
# the official template keeps images without annotations (data.train.filter_empty_gt=False); min_size 32 as mmdet
train_dataloader = dict(dataset=dict(filter_cfg=dict(filter_empty_gt=False, min_size=32)))
