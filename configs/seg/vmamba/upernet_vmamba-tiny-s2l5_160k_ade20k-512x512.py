# Target: UperNet 160k, ADE20K val mIoU 48.3 (SS) / 48.6 (MS) (62M, 948G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_tiny1.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_tiny_s2l5` = <weights dir>/vmamba_tiny_s2l5.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_tiny_s2l5',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_tiny_s2l5')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
