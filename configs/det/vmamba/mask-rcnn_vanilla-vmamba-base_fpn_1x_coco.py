# Target: Mask R-CNN 1x, COCO val2017 box AP 48.6 / mask AP 43.3 (Vanilla-VMamba-B, 96M, 540G).
# Official config: MzeroMiko/VMamba detection/configs/vssm/mask_rcnn_vssm_fpn_coco_base.py (drop_path_rate not
# set: the VSSM default 0.1)
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vanilla_vmamba_base` = <weights dir>/vanilla_vmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_base',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_base')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
