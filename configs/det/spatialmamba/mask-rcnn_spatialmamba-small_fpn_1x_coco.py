# Target: Mask R-CNN 1x, COCO val2017 box AP 49.2 / mask AP 44.0 (63M, 315G) (EdwardChasel/Spatial-Mamba README;
# official configs: detection/configs/spatialmamba/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:spatialmamba_small` = <weights dir>/spatialmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='SpatialMambaBackbone',
        model_name='spatialmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:spatialmamba_small')),
    neck=dict(in_channels=[64, 128, 256, 512]))
