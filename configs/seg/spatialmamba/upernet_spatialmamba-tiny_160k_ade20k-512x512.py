# Target: UperNet 160k, ADE20K val mIoU 48.6 (SS) / 49.4 (MS) (57M, 936G) (EdwardChasel/Spatial-Mamba README;
# official configs: segmentation/configs/spatialmamba/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:spatialmamba_tiny` = <weights dir>/spatialmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='SpatialMambaBackbone',
        model_name='spatialmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:spatialmamba_tiny')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
