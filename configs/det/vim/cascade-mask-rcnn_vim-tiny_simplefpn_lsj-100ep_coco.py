# Target: Cascade Mask R-CNN (ViTDet simple feature pyramid, LSJ 1024, 100 epochs), COCO val2017 box AP 45.7 /
# mask AP 39.2 with Vim-Ti: the Vim paper's detection table (arXiv 2401.09417). hustvl/Vim lists no detection
# number in its README or det/README.md, so this number was not read in the repository.
# Official config: hustvl/Vim det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_t_100ep_adj1.py, the one
# det/scripts/ft_vim_tiny_vimdet.sh trains (4 GPUs, 64 images per step) and eval_vim_tiny_vimdet.sh evaluates:
# Vim-Ti (embed 192, depth 24) on cascade_mask_rcnn_vimdet_b_100ep.py with layer decay 0.837
# (cascade_mask_rcnn_vimdet_t_100ep.py, the other Ti file, keeps the base's 0.7). Recipe, and what differs from the
# official backbone (class token kept, no RoPE): ../_base_/cascade-mask-rcnn_vim_simplefpn_lsj-100ep_coco.py.
# Only Vim-Ti has a published detection number; the repository's _s_ / _b_ files have none, so no config here.
# Pretraining: the official Ti files start from ImageNet checkpoints that were not released
# (cascade_mask_rcnn_vimdet_t_100ep.py: .../vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_rope_also_
# residual/best_checkpoint.pth, a RoPE model; _adj1: /mnt/bn/lianghuidata/Vim/det/ckpts/best_checkpoint.pth); the zoo
# starts from the released Vim-Ti (middle class token, no RoPE).

# Weights: `zoo:vim_tiny_patch16_224` = <weights dir>/vim_tiny_patch16_224.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo); the position embedding is interpolated to the 64 x 64 grid of 1024 x 1024 inputs on load.
_base_ = ['../_base_/cascade-mask-rcnn_vim_simplefpn_lsj-100ep_coco.py']

model = dict(
    backbone=dict(
        model_name='vim_tiny_patch16_224',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vim_tiny_patch16_224')),
    neck=dict(in_channels=[192]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.837))
