# Target: UperNet 160k, ADE20K val mIoU 47.8 (SS) (65M, 942G) (YuHengsss/MSVMamba README (master); official
# configs: segmentation/configs/ms_vssm/upernet_ms_vssm_4xb4-160k_ade20k-512x512_tiny.py).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:msvmamba_tiny` = <weights dir>/msvmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_tiny')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
