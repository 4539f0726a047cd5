# Target: UperNet 160k, ADE20K val mIoU 45.6 (SS) / 46.0 (MS) (42M, 893G) (YuHengsss/VSSD (87b753b356dd) readme.md;
# checkpoint upernet_vssd_final_4xb4-160k_ade20k-512x512_micro.pth).
# Official config: none; YuHengsss/VSSD (87b753b356dd) segmentation/configs/vssd/ has only _tiny and _small. Built
# like the tiny file (the recipe below, heads with ReLU(inplace=False)) with the Micro backbone.
# Recipe (../_base_/upernet_160k_ade20k-512x512_tta-3scale.py = the official file's base
# segmentation/configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py): AdamW lr 6e-5, wd
# 0.01, no decay on norms, 160k iterations, 1500-iteration warm-up then poly, 512 x 512 crops, SyncBN UperNet
# (channels 512) + FCN auxiliary head.
# Drop path 0.1: the official Micro detection file's value (the repository uses one downstream value per variant:
# Tiny 0.2 and Small 0.4 in both its det and seg files); an inference, not read in a seg file.
# Heads with act_cfg=ReLU(inplace=False), as the official tiny file. Batch: 2 images per GPU (the Swin base; "#
# train_dataloader = dict(batch_size=4) # as gpus=4" is commented out there) x 8 GPUs (readme.md) = 16.

# Weights: `zoo:vssd_micro` = <weights dir>/vssd_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/upernet_160k_ade20k-512x512_tta-3scale.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_micro',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_micro')),
    decode_head=dict(in_channels=[48, 96, 192, 384], act_cfg=dict(type='ReLU', inplace=False)),
    auxiliary_head=dict(in_channels=192, act_cfg=dict(type='ReLU', inplace=False)))
