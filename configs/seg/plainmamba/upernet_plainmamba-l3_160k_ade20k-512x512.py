# Target: UperNet 160k, ADE20K val mIoU 49.1 (81M) (ChenhongyiYang/PlainMamba README).
# Official config: ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l3_upernet.py
# (drop path 0.3, blocks (8, 17, 26, 35)); recipe: ../_base_/upernet_plainmamba_160k_ade20k-512x512.py.

# Weights: `zoo:plainmamba_l3` = <weights dir>/plainmamba_l3.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo); the
# official file is the mmcls checkpoint as released.
_base_ = ['../_base_/upernet_plainmamba_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(model_name='plainmamba_l3', out_indices=(8, 17, 26, 35), drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l3')),
    decode_head=dict(in_channels=[448, 448, 448, 448]),
    auxiliary_head=dict(in_channels=448))
