# Target: Mask R-CNN 1x, COCO val2017 box AP 50.4 / mask AP 45.1 (115M, 494G) (EdwardChasel/Spatial-Mamba
# (71221ebfaa5f) README.md, "COCO Object Detection and Instance Segmentation").
# Official config: EdwardChasel/Spatial-Mamba (71221ebfaa5f)
# detection/configs/spatialmamba/mask_rcnn_spatialmamba_fpn_coco_base.py.
# Recipe (../_base_/mask-rcnn_fpn_1x_coco.py = the official file's base
# detection/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py): AdamW lr 1e-4, wd 0.05, no decay on norms, 12
# epochs, lr x0.1 at 8 and 11, 1000-iteration linear warm-up, 1333 x 800 single scale.
# Drop path 0.5: set in the official file.
# Batch: 2 images per GPU (the repository's coco_instance.py) x 8 GPUs (README: `bash ./tools/dist_train.sh <config>
# 8`) = 16.

# Weights: `zoo:spatialmamba_base` = <weights dir>/spatialmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='SpatialMambaBackbone',
        model_name='spatialmamba_base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:spatialmamba_base')),
    neck=dict(in_channels=[96, 192, 384, 768]))
