# Target: Mask R-CNN 1x, COCO val2017 box AP 47.4 / mask AP 42.7 (VMamba-T[s2l5], 50M, 270G).
# Official config: MzeroMiko/VMamba detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_tiny1.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_tiny_s2l5` = <weights dir>/vmamba_tiny_s2l5.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_tiny_s2l5',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_tiny_s2l5')),
    neck=dict(in_channels=[96, 192, 384, 768]))
