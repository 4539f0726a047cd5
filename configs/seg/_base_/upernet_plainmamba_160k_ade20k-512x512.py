# The PlainMamba UperNet 160k recipe (ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/
# l{1,2,3}_upernet.py, mmseg 0.x): four stride-16 block outputs with per-level norms (pyramid='none'), UperNet
# channels 512, auxiliary FCN head on the last map, AdamW lr 6e-5 wd 0.01 without decay on norms / pos_embed /
# A_log / D / direction_Bs, 1500-iteration warm-up then poly, 8 GPUs x 2 images.
# A variant config sets model_name, out_indices, drop_path_rate, init_cfg and the head channels.
_base_ = ['./upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(type='PlainMambaBackbone', model_name='plainmamba_l1', pyramid='none'),
    auxiliary_head=dict(in_index=3))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'pos_embed': dict(decay_mult=0.),
    'norm': dict(decay_mult=0.),
    '.A_log': dict(decay_mult=0.),
    '.D': dict(decay_mult=0.),
    '.direction_Bs': dict(decay_mult=0.),
}))
