# Mask R-CNN 1x with Vim-Ti through the simple feature pyramid (blocks 5, 11, 17, 23 -> strides 4..32, as Vim's
# segmentation backbone, hustvl/Vim seg/backbone/vim.py fpn1..fpn4) on the shared Swin-style recipe.
# No target number: the Vim paper reports detection only with Cascade Mask R-CNN in detectron2's ViTDet recipe
# (hustvl/Vim det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_t_100ep.py: 1024 LSJ crops, 100 epochs,
# SimpleFeaturePyramid with LN from the last block, Vim-Ti 45.7 box AP / 39.2 mask AP), which is not reproduced
# here.

_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VimBackbone',
        model_name='vim_tiny_patch16_224',
        out_indices=(5, 11, 17, 23),
        pyramid='simple',
        norm_cfg=dict(type='SyncBN'),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vim_tiny_patch16_224')),
    neck=dict(in_channels=[192, 192, 192, 192]))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='ZooLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.92))
