# Mask R-CNN + FPN, COCO instance segmentation, 1x schedule: the recipe every VMamba-family paper uses (the official
# VMamba / EfficientVMamba / MSVMamba detection configs inherit mmdet 3.3.0's
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py: AdamW lr 1e-4, wd 0.05, no decay on norms, 12 epochs,
# lr x0.1 at epochs 8 and 11, 1000-iteration linear warm-up, 16 images per step = 8 GPUs x 2).
# A family config sets model.backbone (type / model_name / drop_path_rate / init_cfg) and model.neck.in_channels.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vmamba_zoo.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='VMambaBackbone', model_name='vmamba_tiny', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[96, 192, 384, 768]))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }),
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
# 8 GPUs x 2 images; tools/mm.py --launcher pytorch spreads it (auto_scale_lr off, as the papers)
train_dataloader = dict(batch_size=2, num_workers=2)
