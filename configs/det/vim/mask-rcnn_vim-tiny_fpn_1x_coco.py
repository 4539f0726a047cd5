# No target: not a paper recipe. Mask R-CNN 1x with Vim-Ti through the simple feature pyramid (blocks 5, 11, 17,
# 23 -> strides 4..32, as Vim's segmentation backbone, hustvl/Vim seg/backbone/vim.py fpn1..fpn4) on the shared
# Swin-style recipe, with Vim's segmentation layer decay 0.92: a cheaper baseline that no paper reports.
# The Vim paper's detection recipe (Cascade Mask R-CNN, ViTDet simple feature pyramid with LN from the last block,
# LSJ 1024, 100 epochs; Vim-Ti 45.7 box AP / 39.2 mask AP) is
# cascade-mask-rcnn_vim-tiny_simplefpn_lsj-100ep_coco.py in this folder.

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
