# Target: Mask R-CNN 1x, COCO val2017 box AP 45.4 / mask AP 41.3 (33M, 220G) (YuHengsss/VSSD readme.md; official
# configs: detection/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:vssd_micro` = <weights dir>/vssd_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_micro',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_micro')),
    neck=dict(in_channels=[48, 96, 192, 384]))
