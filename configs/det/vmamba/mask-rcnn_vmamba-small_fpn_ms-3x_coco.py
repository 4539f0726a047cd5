# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 49.9 / mask AP 44.2.
# Official config: MzeroMiko/VMamba detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_small_ms_3x.py
# Result: MzeroMiko/VMamba assets/performance.md

# Weights: `zoo:vmamba_small` = <weights dir>/vmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_small')),
    neck=dict(in_channels=[96, 192, 384, 768]))
