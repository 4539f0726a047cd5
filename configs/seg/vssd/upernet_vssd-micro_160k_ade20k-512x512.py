# Target: UperNet 160k, ADE20K val mIoU 45.6 (SS) / 46.0 (MS) (42M, 893G) (YuHengsss/VSSD readme.md; official
# configs: segmentation/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:vssd_micro` = <weights dir>/vssd_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_micro',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_micro')),
    decode_head=dict(in_channels=[48, 96, 192, 384]),
    auxiliary_head=dict(in_channels=192))
