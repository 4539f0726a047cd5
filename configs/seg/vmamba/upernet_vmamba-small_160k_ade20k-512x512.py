# Target: UperNet 160k, ADE20K val mIoU 50.6 (SS) / 51.2 (MS) (82M, 1028G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_small.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_small` = <weights dir>/vmamba_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_small')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
