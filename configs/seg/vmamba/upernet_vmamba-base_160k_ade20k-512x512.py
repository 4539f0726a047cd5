# Target: UperNet 160k, ADE20K val mIoU 51.0 (SS) / 51.6 (MS) (122M, 1170G).
# Official config: MzeroMiko/VMamba segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_base.py
# Result: MzeroMiko/VMamba assets/performance.md
# Weights: `zoo:vmamba_base` = <weights dir>/vmamba_base.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='VMambaBackbone',
        model_name='vmamba_base',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vmamba_base')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
