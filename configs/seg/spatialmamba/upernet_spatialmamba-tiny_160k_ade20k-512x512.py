# Target: UperNet 160k, ADE20K val mIoU 48.6 (SS) / 49.4 (MS) (57M, 936G) (EdwardChasel/Spatial-Mamba (71221ebfaa5f)
# README.md, "ADE20K Semantic Segmentation"; MS = `--tta` with the repository's 3-scale test, set by the base).
# Official config: EdwardChasel/Spatial-Mamba (71221ebfaa5f)
# segmentation/configs/spatialmamba/upernet_spatialmamba_4xb4-160k_ade20k-512x512_tiny.py.
# Recipe (../_base_/upernet_160k_ade20k-512x512_tta-3scale.py = the official file's base
# segmentation/configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py): AdamW lr 6e-5, wd
# 0.01, no decay on norms, 160k iterations, 1500-iteration warm-up then poly, 512 x 512 crops, SyncBN UperNet
# (channels 512) + FCN auxiliary head.
# Drop path 0.2: set in the official file.
# Batch: 2 images per GPU (the Swin base; the file's "# train_dataloader = dict(batch_size=4) # as gpus=4" is
# commented out) x 8 GPUs (README) = 16.

# Weights: `zoo:spatialmamba_tiny` = <weights dir>/spatialmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512_tta-3scale.py']

model = dict(
    backbone=dict(
        type='SpatialMambaBackbone',
        model_name='spatialmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:spatialmamba_tiny')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
