# Target: UperNet 160k, ADE20K val mIoU 46.8 (55M) (ChenhongyiYang/PlainMamba README).
# Official config: ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l2_upernet.py
# (drop path 0.2, blocks (5, 11, 17, 23)); recipe: ../_base_/upernet_plainmamba_160k_ade20k-512x512.py.

# Weights: `zoo:plainmamba_l2` = <weights dir>/plainmamba_l2.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo); the
# official file is the mmcls checkpoint as released.
_base_ = ['../_base_/upernet_plainmamba_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(model_name='plainmamba_l2', out_indices=(5, 11, 17, 23), drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l2')),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
