# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 46.3 / mask AP 41.8 (YuHengsss/MSVMamba README
# (master); official configs: detection/configs/ms_vssm/mask_rcnn_ms_vssm_fpn_coco_micro.py).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:msvmamba_micro` = <weights dir>/msvmamba_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_micro',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_micro')),
    neck=dict(in_channels=[64, 128, 256, 512]))
