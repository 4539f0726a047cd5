# Target: UperNet 160k, ADE20K val mIoU 49.5 (SS) / 50.5 (MS) (76M, 1081G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm/upernet_vssm_4xb4-160k_ade20k-512x512_small.py
# (deleted from the repo in 2e137f6; cls drop-path 0.3 used)
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vanilla_vmamba_small` = <weights dir>/vanilla_vmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS
# or ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vanilla_vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vanilla_vmamba_small')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
