# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 48.5 / mask AP 43.2.
# Official config: MzeroMiko/VMamba detection/configs/vssm/mask_rcnn_vssm_fpn_coco_tiny_ms_3x.py
# Result: MzeroMiko/VMamba assets/performance.md

# Weights: `zoo:vanilla_vmamba_tiny` = <weights dir>/vanilla_vmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_tiny')),
    neck=dict(in_channels=[96, 192, 384, 768]))
