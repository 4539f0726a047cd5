# Target: UperNet 160k, ADE20K val mIoU 47.3 (SS) / 48.3 (MS) (55M, 964G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm/upernet_vssm_4xb4-160k_ade20k-512x512_tiny.py
# (deleted from the repo in 2e137f6; cls drop-path 0.2 used)
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vanilla_vmamba_tiny` = <weights dir>/vanilla_vmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_tiny')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
