# UperNet 160k with efficientvmamba_tiny, on the VMamba / Swin recipe. TerryPei/EfficientVMamba publishes no COCO
# / ADE20K result in its repository (README, logs); the paper's tables were not checked here, so no target number
# is claimed.

# Weights: `zoo:efficientvmamba_tiny` = <weights dir>/efficientvmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS
# or ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='EfficientVMambaBackbone',
        model_name='efficientvmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:efficientvmamba_tiny')),
    decode_head=dict(in_channels=[48, 96, 192, 384]),
    auxiliary_head=dict(in_channels=192))
