# Target: UperNet 160k, ADE20K val mIoU 47.8 (SS; no MS number) (65M, 942G) (YuHengsss/MSVMamba (master,
# c39401918e94) README.md).
# Official config: YuHengsss/MSVMamba (master, c39401918e94)
# segmentation/configs/ms_vssm/upernet_ms_vssm_4xb4-160k_ade20k-512x512_tiny.py.
# Recipe (../_base_/upernet_160k_ade20k-512x512.py = the official file's base
# segmentation/configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py): AdamW lr 6e-5, wd
# 0.01, no decay on norms, 160k iterations, 1500-iteration warm-up then poly, 512 x 512 crops, SyncBN UperNet
# (channels 512) + FCN auxiliary head.
# Drop path 0.2: set in the official file.
# Batch: 2 images per GPU (the Swin base; the file's "# train_dataloader = dict(batch_size=4) # as gpus=4" is
# commented out, so the "4xb4" in its name is not what it sets) x 8 GPUs in the README's `tools/dist_train.sh CONFIG
# 8` = 16.

# Weights: `zoo:msvmamba_tiny` = <weights dir>/msvmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_tiny')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
