# Target: UperNet 160k, ADE20K val mIoU 47.9 (SS) / 48.7 (MS) (53M, 941G) (YuHengsss/VSSD readme.md; official
# configs: segmentation/).
# Drop path: the ImageNet value of the variant; the official downstream config was not checked here (the numbers
# are from the README).

# Weights: `zoo:vssd_tiny` = <weights dir>/vssd_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_tiny')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
