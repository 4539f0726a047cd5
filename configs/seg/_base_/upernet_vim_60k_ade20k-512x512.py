# The Vim UperNet recipe (hustvl/Vim seg/configs/vim/upernet/upernet_vim_{tiny,small}_24_512_slide_60k.py);
# a variant config sets model_name, init_cfg and the channels (defaults: Vim-Ti, 192).
# mmseg 0.x there: 60k iterations, 4 GPUs x 8 images, AdamW lr 1e-4 wd 0.05, layer decay 0.92 over 24 blocks, 1500-iteration warm-up then poly decay, UperNet
# channels = embed dim, slide test 512 / stride 341, features of blocks (5, 11, 17, 23) through fpn1..fpn4
# (pyramid='simple'). Drop path: not set there, so the VisionMamba default 0.1.
# Differences: the official tiny seg backbone drops the class token (if_cls_token=False) and the small one adds
# RoPE (if_rope=True); the zoo's Vim keeps the middle class token and has no RoPE, so the ImageNet weights load as
# trained. The official layer-decay constructor never matched Vim's block names (every block got the top lr);
# ZooLayerDecayOptimWrapperConstructor applies the configured decay.

_base_ = ['./upernet_160k_ade20k-512x512.py']

crop_size = (512, 512)
model = dict(
    backbone=dict(
        type='VimBackbone',
        model_name='vim_tiny_patch16_224',
        out_indices=(5, 11, 17, 23),
        pyramid='simple',
        norm_cfg=dict(type='SyncBN'),
        drop_path_rate=0.1,
        model_kwargs=dict(img_size=512)),
    decode_head=dict(in_channels=[192, 192, 192, 192], channels=192),
    auxiliary_head=dict(in_channels=192),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='ZooLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.92))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=60000, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=60000, val_interval=6000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=6000))
train_dataloader = dict(batch_size=8)  # x 4 GPUs
