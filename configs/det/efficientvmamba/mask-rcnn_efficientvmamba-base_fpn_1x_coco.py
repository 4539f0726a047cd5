# Mask R-CNN 1x with efficientvmamba_base. TerryPei/EfficientVMamba publishes no COCO / ADE20K result in its
# repository (README, logs); the paper's tables were not checked here, so no target number is claimed.
# Official config: TerryPei/EfficientVMamba
# detection/configs/efficient/mask_rcnn_vssm_fpn_coco_efficient_2292_96.py (that file trains the 3x multi-scale
# schedule)

# Weights: `zoo:efficientvmamba_base` = <weights dir>/efficientvmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS
# or ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='EfficientVMambaBackbone',
        model_name='efficientvmamba_base',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:efficientvmamba_base')),
    neck=dict(in_channels=[96, 192, 384, 768]))
