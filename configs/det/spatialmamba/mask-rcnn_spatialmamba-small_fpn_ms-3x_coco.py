# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 50.5 / mask AP 44.6 (63M, 315G)
# (EdwardChasel/Spatial-Mamba (71221ebfaa5f) README.md).
# Official config: EdwardChasel/Spatial-Mamba (71221ebfaa5f)
# detection/configs/spatialmamba/mask_rcnn_spatialmamba_fpn_coco_small_3x.py.
# Recipe (../_base_/mask-rcnn_fpn_ms-3x_coco.py = the official file's base
# detection/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py): AdamW lr 1e-4, wd 0.05, no decay on norms,
# 36 epochs, lr x0.1 at 27 and 33, 1000-iteration warm-up, multi-scale 480-800 resize or DETR-style crop.
# Drop path 0.3: set in the official file.
# Batch: 2 images per GPU (the repository's coco_instance.py) x 8 GPUs (README: `bash ./tools/dist_train.sh <config>
# 8`) = 16.

# Weights: `zoo:spatialmamba_small` = <weights dir>/spatialmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='SpatialMambaBackbone',
        model_name='spatialmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:spatialmamba_small')),
    neck=dict(in_channels=[64, 128, 256, 512]))
