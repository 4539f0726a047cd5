# Target: UperNet 160k, ADE20K val mIoU 44.1 (35M) (ChenhongyiYang/PlainMamba README).
# Official config: ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l1_upernet.py
# (drop path 0.1, blocks (5, 11, 17, 23)); recipe: ../_base_/upernet_plainmamba_160k_ade20k-512x512.py.

# Weights: `zoo:plainmamba_l1` = <weights dir>/plainmamba_l1.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo); the
# official file is the mmcls checkpoint as released.
_base_ = ['../_base_/upernet_plainmamba_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(model_name='plainmamba_l1', out_indices=(5, 11, 17, 23), drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l1')),
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))
