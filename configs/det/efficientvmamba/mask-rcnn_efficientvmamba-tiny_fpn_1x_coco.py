# Mask R-CNN 1x with efficientvmamba_tiny. TerryPei/EfficientVMamba publishes no COCO / ADE20K result in its
# repository (README, logs); the paper's tables were not checked here, so no target number is claimed.
# Official config: TerryPei/EfficientVMamba
# detection/configs/efficient/mask_rcnn_vssm_fpn_coco_efficient_2242_48.py (its depths (2, 2, 9, 2) contradict the
# tiny checkpoint it loads, (2, 2, 4, 2); the released model is used)

# Weights: `zoo:efficientvmamba_tiny` = <weights dir>/efficientvmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS
# or ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='EfficientVMambaBackbone',
        model_name='efficientvmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:efficientvmamba_tiny')),
    neck=dict(in_channels=[48, 96, 192, 384]))
