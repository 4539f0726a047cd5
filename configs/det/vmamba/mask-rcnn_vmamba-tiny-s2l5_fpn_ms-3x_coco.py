# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 48.9 / mask AP 43.7.
# Official config: MzeroMiko/VMamba detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_tiny1_ms_3x.py
# Result: MzeroMiko/VMamba assets/performance.md

# Weights: `zoo:vmamba_tiny_s2l5` = <weights dir>/vmamba_tiny_s2l5.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_tiny_s2l5',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_tiny_s2l5')),
    neck=dict(in_channels=[96, 192, 384, 768]))
