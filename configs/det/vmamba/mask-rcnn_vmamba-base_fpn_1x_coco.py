# Target: Mask R-CNN 1x, COCO val2017 box AP 49.2 / mask AP 44.1 (VMamba-B[s2l15], 108M, 485G).
# Official config: MzeroMiko/VMamba detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_base.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_base` = <weights dir>/vmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_base',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_base')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
