# Target: UperNet 160k, ADE20K val mIoU 47.9 (SS) / 48.8 (MS) (62M, 949G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_tiny.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_tiny` = <weights dir>/vmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_tiny')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
