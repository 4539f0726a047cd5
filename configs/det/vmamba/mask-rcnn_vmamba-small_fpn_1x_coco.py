# Target: Mask R-CNN 1x, COCO val2017 box AP 48.7 / mask AP 43.7 (VMamba-S[s2l15], 70M, 384G).
# Official config: MzeroMiko/VMamba detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_small.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_small` = <weights dir>/vmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_small')),
    neck=dict(in_channels=[96, 192, 384, 768]))
