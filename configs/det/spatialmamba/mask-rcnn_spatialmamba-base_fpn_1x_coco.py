# Target: Mask R-CNN 1x, COCO val2017 box AP 50.4 / mask AP 45.1 (115M, 494G) (EdwardChasel/Spatial-Mamba README;
# official configs: detection/configs/spatialmamba/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

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
