# Target: UperNet 160k, ADE20K val mIoU 45.1 (SS) / 45.4 (MS) (42M, 875G) (YuHengsss/MSVMamba (master, c39401918e94)
# README.md, "Semantic Segmentation on ADE20K"; MS = `--tta`, mmseg's 6 ratios, the repository's ade20k.py is
# mmseg's).
# Official config: YuHengsss/MSVMamba (master, c39401918e94)
# segmentation/configs/ms_vssm/upernet_ms_vssm_4xb4-160k_ade20k-512x512_micro.py.
# Recipe (../_base_/upernet_160k_ade20k-512x512.py = the official file's base
# segmentation/configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py): AdamW lr 6e-5, wd
# 0.01, no decay on norms, 160k iterations, 1500-iteration warm-up then poly, 512 x 512 crops, SyncBN UperNet
# (channels 512) + FCN auxiliary head.
# Drop path 0.3: not set in the official file (unlike the tiny one); its backbone dict is merged over the Swin-T
# UperNet base, whose drop_path_rate=0.3 reaches VSSM(**kwargs).
# Batch: 2 images per GPU (the Swin base; the file's "# train_dataloader = dict(batch_size=4) # as gpus=4" is
# commented out, so the "4xb4" in its name is not what it sets) x 8 GPUs in the README's `tools/dist_train.sh CONFIG
# 8` = 16.

# Weights: `zoo:msvmamba_micro` = <weights dir>/msvmamba_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_micro',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_micro')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
