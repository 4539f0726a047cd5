# Target: Mask R-CNN 1x, COCO val2017 box AP 46.9 / mask AP 42.2 (53M, 252G) (YuHengsss/MSVMamba README (master);
# official configs: detection/configs/ms_vssm/mask_rcnn_ms_vssm_fpn_coco_tiny.py).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:msvmamba_tiny` = <weights dir>/msvmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_tiny')),
    neck=dict(in_channels=[96, 192, 384, 768]))
