# Target: UperNet, ADE20K val mIoU 41.0 (Vim paper, Table "semantic segmentation"; the repository lists no number).
# Official config: hustvl/Vim seg/configs/vim/upernet/upernet_vim_tiny_24_512_slide_60k.py; recipe and the differences from it:
# ../_base_/upernet_vim_60k_ade20k-512x512.py.

# Weights: `zoo:vim_tiny_patch16_224` = <weights dir>/vim_tiny_patch16_224.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo); the position embedding is interpolated to the 512 grid on load.
_base_ = ['../_base_/upernet_vim_60k_ade20k-512x512.py']

model = dict(
    backbone=dict(model_name='vim_tiny_patch16_224', init_cfg=dict(type='Pretrained', checkpoint='zoo:vim_tiny_patch16_224')),
    decode_head=dict(in_channels=[192, 192, 192, 192], channels=192),
    auxiliary_head=dict(in_channels=192))
