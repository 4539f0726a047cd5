# Target: UperNet 160k, ADE20K val mIoU 50.0 (SS) / 51.3 (MS) (110M, 1226G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm/upernet_vssm_4xb4-160k_ade20k-512x512_base.py
# (deleted from the repo in 2e137f6; cls drop-path 0.6 used)
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vanilla_vmamba_base` = <weights dir>/vanilla_vmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_base',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_base')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
