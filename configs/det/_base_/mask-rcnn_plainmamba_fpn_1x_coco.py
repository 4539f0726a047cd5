# The PlainMamba Mask R-CNN 1x recipe (ChenhongyiYang/PlainMamba downstream/mmdetection/plain_mamba_det_configs/
# maskrcnn/l{1,2,3}_maskrcnn_1x.py, template/maskrcnn_1x.py): AdamW lr 1e-4 wd 0.05 without decay on norms / biases
# / pos_embed / A_log / D / direction_Bs, SyncBN FPN, 4conv-1fc box head with SyncBN, 4-conv mask head, 12 epochs.
# Not the official backbone: the paper's PlainMamba-Adapter (a ViT-Adapter with deformable-attention injectors /
# extractors, downstream/mmdetection/mmdet/models/backbones/plain_mamba_adapter.py) is not implemented in the zoo;
# here the plain backbone reaches FPN through the simple pyramid (four evenly spaced blocks -> strides 4..32).
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
