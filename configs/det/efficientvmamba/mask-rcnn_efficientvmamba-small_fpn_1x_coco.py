# Mask R-CNN 1x with efficientvmamba_small. TerryPei/EfficientVMamba publishes no COCO / ADE20K result in its
# repository (README, logs); the paper's tables were not checked here, so no target number is claimed.
# Official config: TerryPei/EfficientVMamba
# detection/configs/efficient/mask_rcnn_vssm_fpn_coco_efficient_2242_96.py (its dims 96 contradict the released
# small checkpoint, 64)

# Weights: `zoo:efficientvmamba_small` = <weights dir>/efficientvmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS
# or ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='EfficientVMambaBackbone',
        model_name='efficientvmamba_small',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:efficientvmamba_small')),
    neck=dict(in_channels=[64, 128, 256, 512]))
