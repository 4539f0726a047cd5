# Target: UperNet 160k, ADE20K val mIoU 47.9 (SS) / 48.7 (MS) (53M, 941G) (YuHengsss/VSSD (87b753b356dd) readme.md,
# "Semantic Segmentation on ADE20K"; MS = `--tta` with the repository's 3-scale test, set by the base).
# Official config: YuHengsss/VSSD (87b753b356dd)
# segmentation/configs/vssd/upernet_vssd_4xb4-160k_ade20k-512x512_tiny.py.
# Recipe (../_base_/upernet_160k_ade20k-512x512_tta-3scale.py = the official file's base
# segmentation/configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py): AdamW lr 6e-5, wd
# 0.01, no decay on norms, 160k iterations, 1500-iteration warm-up then poly, 512 x 512 crops, SyncBN UperNet
# (channels 512) + FCN auxiliary head.
# Drop path 0.2: set in the official file.
# Heads with act_cfg=ReLU(inplace=False), as the official file. Batch: 2 images per GPU (the Swin base; "#
# train_dataloader = dict(batch_size=4) # as gpus=4" is commented out there) x 8 GPUs (readme.md) = 16.

# Weights: `zoo:vssd_tiny` = <weights dir>/vssd_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512_tta-3scale.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_tiny')),
    decode_head=dict(in_channels=[64, 128, 256, 512], act_cfg=dict(type='ReLU', inplace=False)),
    auxiliary_head=dict(in_channels=256, act_cfg=dict(type='ReLU', inplace=False)))
