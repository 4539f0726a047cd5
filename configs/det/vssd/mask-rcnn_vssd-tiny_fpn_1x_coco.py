# Target: Mask R-CNN 1x, COCO val2017 box AP 46.9 / mask AP 42.6 (44M, 265G) (YuHengsss/VSSD readme.md; official
# configs: detection/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:vssd_tiny` = <weights dir>/vssd_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_tiny')),
    neck=dict(in_channels=[64, 128, 256, 512]))
