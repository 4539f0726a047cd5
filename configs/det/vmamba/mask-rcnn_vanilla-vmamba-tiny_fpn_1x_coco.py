# Target: Mask R-CNN 1x, COCO val2017 box AP 46.5 / mask AP 42.1 (Vanilla-VMamba-T, 42M, 286G).
# Official config: MzeroMiko/VMamba detection/configs/vssm/mask_rcnn_vssm_fpn_coco_tiny.py (drop_path_rate not
# set: the VSSM default 0.1)
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vanilla_vmamba_tiny` = <weights dir>/vanilla_vmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_tiny')),
    neck=dict(in_channels=[96, 192, 384, 768]))
