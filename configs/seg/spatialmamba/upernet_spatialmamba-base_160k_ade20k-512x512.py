# Target: UperNet 160k, ADE20K val mIoU 51.8 (SS) / 52.6 (MS) (127M, 1176G) (EdwardChasel/Spatial-Mamba README;
# official configs: segmentation/configs/spatialmamba/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:spatialmamba_base` = <weights dir>/spatialmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='SpatialMambaBackbone',
        model_name='spatialmamba_base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:spatialmamba_base')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
