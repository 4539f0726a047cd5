# Target: Mask R-CNN 1x, COCO val2017 box AP 48.4 / mask AP 43.5 (59M, 325G) (YuHengsss/VSSD readme.md; official
# configs: detection/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:vssd_small` = <weights dir>/vssd_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_small')),
    neck=dict(in_channels=[64, 128, 256, 512]))
