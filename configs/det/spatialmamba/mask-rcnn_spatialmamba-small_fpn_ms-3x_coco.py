# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 50.5 / mask AP 44.6 (EdwardChasel/Spatial-Mamba README;
# official configs: detection/configs/spatialmamba/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

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
