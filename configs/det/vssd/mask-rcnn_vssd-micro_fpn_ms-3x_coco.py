# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 47.7 / mask AP 42.8 (YuHengsss/VSSD readme.md; official
# configs: detection/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:vssd_micro` = <weights dir>/vssd_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_micro',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_micro')),
    neck=dict(in_channels=[48, 96, 192, 384]))
