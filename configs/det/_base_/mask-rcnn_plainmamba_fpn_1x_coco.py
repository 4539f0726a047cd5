# PlainMamba-Adapter Mask R-CNN 1x: the official recipe and backbone. Source: ChenhongyiYang/PlainMamba
# (0975a1d0d8bc) downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l{1,2,3}_maskrcnn_1x.py over
# template/maskrcnn_1x.py (mmdet 2.x): AdamW lr 1e-4, wd 0.05, no decay on level_embed / pos_embed / norms /
# biases / A_log / D / direction_Bs, no layer decay, no grad clip, fp32; configs/_base_/schedules/schedule_1x.py:
# 12 epochs, lr x0.1 at 8 and 11, linear warm-up over 500 iterations from 0.001; 1333 x 800, flip, images
# without annotations kept (filter_empty_gt=False), SyncBN FPN, Shared4Conv1FC box head with SyncBN and L1 loss,
# 4-conv mask head without norm, RPN 1000 proposals per image in training; 2 images x 8 GPUs (README:
# tools/dist_train.sh ... 8); backbone initialised from the ImageNet PlainMamba (l{1,2,3}.pth, prefix backbone.).
#
# Backbone: PlainMambaAdapter (vmamba_zoo/mm/adapter.py, after the official
# downstream/mmdetection/mmdet/models/backbones/plain_mamba_adapter.py + adapter_modules.py, a ViT-Adapter) around
# the zoo's timm PlainMamba, whose blocks it runs range by range:
# - SpatialPriorModule: conv stem (3x3 s2 64 + two 3x3 64, SyncBN, ReLU, max pool) then 3x3 s2 convs to 128, 256,
#   256 channels -> c1..c4 at strides 4 / 8 / 16 / 32, each 1x1-projected to embed_dims; level_embed (3, D) added
#   to c2..c4, which are flattened into one token set;
# - 4 InteractionBlocks over the block ranges interaction_indexes ([[0,5],[6,11],[12,17],[18,23]]; L3
#   [[0,8],[9,17],[18,26],[27,35]]): an Injector (LN eps 1e-6 on query / feature, multi-scale deformable attention
#   (mmcv MultiScaleDeformableAttention) from the stride-16 tokens into c2..c4, 3 levels, n_points 4,
#   deform_num_heads 6 (L3: 8), deform_ratio 1.0, output scaled by a learnable gamma initialised to 0) before the
#   range, the PlainMamba blocks of the range, then an Extractor (deformable attention from c2..c4 into the tokens,
#   1 level, + ConvFFN: fc -> 3x3 depthwise conv per level -> GELU -> fc, hidden = 0.25 D, drop path = the
#   backbone's rate); 2 extra Extractors in the last block;
# - outputs: c1 + deconv2x2(c2), c2, c3, c4, each plus the final tokens resized bilinearly to its stride (x4, x2,
#   x1, x0.5), each through its own SyncBN (ad_norm1..4); no final norm (final_norm=False); conv_inplane 64.
# A variant config sets model_name, the adapter arguments, drop_path_rate, init_cfg and the neck channels.
_base_ = ['./mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(_delete_=True, type='PlainMambaAdapter', model_name='plainmamba_l1', conv_inplane=64,
                  n_points=4, deform_num_heads=6, cffn_ratio=0.25, deform_ratio=1.0, init_values=0.,
                  add_vit_feature=True, use_extra_extractor=True,
                  interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
                  norm_cfg=dict(type='SyncBN')),
    neck=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=dict(type='SyncBN', requires_grad=True)),
        mask_head=dict(num_convs=4)))
# mmdet 2.x schedule_1x warm-up: 500 iterations (the shared base has the Swin recipe's 1000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'level_embed': dict(decay_mult=0.),
    'pos_embed': dict(decay_mult=0.),
    'norm': dict(decay_mult=0.),
    'bias': dict(decay_mult=0.),
    '.A_log': dict(decay_mult=0.),
    '.D': dict(decay_mult=0.),
    '.direction_Bs': dict(decay_mult=0.),
}))
# the official template keeps images without annotations (data.train.filter_empty_gt=False); min_size 32 as mmdet
train_dataloader = dict(dataset=dict(filter_cfg=dict(filter_empty_gt=False, min_size=32)))
