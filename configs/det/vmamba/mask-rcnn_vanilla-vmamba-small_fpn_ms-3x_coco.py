# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 49.7 / mask AP 44.0.
# Official config: MzeroMiko/VMamba detection/configs/vssm/mask_rcnn_vssm_fpn_coco_small_ms_3x.py
# Result: MzeroMiko/VMamba assets/performance.md

# Weights: `zoo:vanilla_vmamba_small` = <weights dir>/vanilla_vmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS
# or ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_small')),
    neck=dict(in_channels=[96, 192, 384, 768]))
