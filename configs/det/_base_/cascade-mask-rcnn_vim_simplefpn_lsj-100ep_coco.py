# Vim's COCO detection recipe ("VimDet"), rebuilt from mmdet 3.3.0's Cascade Mask R-CNN pieces. Source: hustvl/Vim
# det/ (detectron2 + ViTDet): det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_b_100ep.py (cascade heads),
# mask_rcnn_vimdet_b_100ep.py (schedule, optimiser), det/configs/common/models/mask_rcnn_vimdet.py (backbone and
# pyramid), det/projects/ViTDet/configs/common/coco_loader_lsj.py (data), det/configs/common/optim.py (AdamW).
#
# What the official files set, and how it is expressed here:
# - backbone: VisionMambaDet, img_size 1024, patch 16, drop path 0.1, single output = the residual stream after the
#   last block with its output added, no final norm (last_layer_process='add'), class token and RoPE see below
#   -> VimBackbone(out_indices=(23,), pyramid='none', out_norm=False, feature='residual', img_size=1024).
# - SimpleFeaturePyramid(scale_factors=(4, 2, 1, 0.5), out_channels=256, norm='LN', top_block=LastLevelMaxPool,
#   square_pad=1024) -> vmamba_zoo.mm ViTDetSimpleFPN (LN2d, eps 1e-6), 5 levels, strides 4..64; every batch
#   padded to 1024 x 1024 with zeros after normalisation, in training and test, as detectron2's square_pad: here
#   DetDataPreprocessor(pad_size_divisor=1024) (no image exceeds 1024 after the LSJ crop / the test resize), which
#   keeps each image's real size for clipping boxes, and the position embedding grid fixed at 64 x 64.
# - RPN with 2 convs (proposal_generator.head.conv_dims=[-1, -1]); 3 cascade stages at IoU 0.5 / 0.6 / 0.7, each a
#   4conv-1fc box head (256 ch, fc 1024) with LN, class-agnostic regression with weights (10,10,5,5) /
#   (20,20,10,10) / (30,30,15,15) (= target stds 0.1/0.2, 0.05/0.1, 0.033/0.067); mask head 4 convs + deconv, LN.
# - RGB ImageNet mean / std; LSJ: flip, resize scale 0.1-2.0 of 1024 x 1024, 1024 crop; test: longest side 1024.
# - 184375 iterations x 64 images (100 epochs), lr x0.1 at 163889 and 177546, 250-iteration linear warm-up from
#   0.001, AMP; AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.1; layer-wise lr decay over 24 blocks
#   (get_vim_lr_decay_rate: patch/pos embedding = layer 0, block i = i + 1, the rest 25); weight decay 0 for
#   pos_embed only (detectron2's weight_decay_norm=0 reaches torch.nn norm modules only, which VimDet has none of:
#   RMSNorm and ViTDet's LayerNorm are plain nn.Modules) -> ZooLayerDecayOptimWrapperConstructor with
#   no_decay_names.
# - 64 images per step on 4 GPUs (det/scripts/ft_vim_tiny_vimdet.sh: --num-gpus 4): 16 per GPU here.
#
# Differences that remain (mmdet is not detectron2, and the zoo has one Vim):
# - the zoo's Vim keeps the ImageNet model's middle class token and has no RoPE; VimDet drops the class token
#   (if_cls_token=False, pos_embed without its class slot) and adds RoPE (if_rope=True, if_rope_residual=True,
#   pt_hw_seq_len=14). The class token is not decayed here (as in ImageNet training).
# - cascade losses are mmdet's: stage weights 1 / 0.5 / 0.25 (detectron2 sums the stages with weight 1 and scales
#   the gradient into the box features by 1/3); L1 box losses as detectron2 (smooth_l1_beta=0).
# - weight init of the new heads / pyramid is mmdet's / PyTorch's, not detectron2's c2 fills.
# A variant config sets model_name, init_cfg and the neck's in_channels (and the layer decay where it differs).
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vmamba_zoo.mm'], allow_failed_imports=False)

image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', eps=1e-6)  # ViTDet's channels-first LayerNorm (vmamba_zoo.mm.neck.LN2d)


def _box_head(target_stds):
    return dict(
        type='Shared4Conv1FCBBoxHead',
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        norm_cfg=norm_cfg,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=target_stds),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))


model = dict(
    data_preprocessor=dict(pad_size_divisor=1024, pad_mask=True),  # = square 1024 x 1024 (see the header)
    backbone=dict(
        _delete_=True,
        type='VimBackbone',
        model_name='vim_tiny_patch16_224',
        out_indices=(23,),
        pyramid='none',
        out_norm=False,
        feature='residual',
        drop_path_rate=0.1,
        model_kwargs=dict(img_size=1024)),
    neck=dict(
        _delete_=True,
        type='ViTDetSimpleFPN',
        in_channels=[192],
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2, loss_bbox=dict(_delete_=True, type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        bbox_head=[
            _box_head([0.1, 0.1, 0.2, 0.2]),
            _box_head([0.05, 0.05, 0.1, 0.1]),
            _box_head([0.033, 0.033, 0.067, 0.067]),
        ],
        mask_head=dict(norm_cfg=norm_cfg)),
    # detectron2 keeps 1000 proposals per image after NMS in training too (post_nms_topk=(1000, 1000))
    train_cfg=dict(rpn_proposal=dict(max_per_img=1000)))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),  # longest side 1024 (ResizeShortestEdge(1024, max 1024))
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=16,  # x 4 GPUs = 64 images per step
    num_workers=8,
    persistent_workers=True,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 184375
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[163889, 177546], gamma=0.1),
]
# AMP as the official run (train.amp.enabled=True); on a CPU-only machine pass
# --cfg-options optim_wrapper.type=OptimWrapper.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='ZooLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7,
                       no_decay_names=['backbone.model.pos_embed', 'backbone.model.cls_token']))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000), logger=dict(interval=20))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=64)
