# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 46.3 / mask AP 41.8 (32M, 201G) (YuHengsss/MSVMamba
# (master, c39401918e94) README.md).
# Official config: YuHengsss/MSVMamba (master, c39401918e94)
# detection/configs/ms_vssm/mask_rcnn_ms_vssm_fpn_coco_micro_3x.py.
# Recipe (../_base_/mask-rcnn_fpn_ms-3x_coco.py = the official file's base
# detection/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py + the 3x pipeline / schedule written in the file):
# AdamW lr 1e-4, wd 0.05, no decay on norms, 36 epochs, lr x0.1 at 27 and 33, 1000-iteration warm-up, multi-scale
# 480-800 resize or DETR-style crop.
# Drop path 0.2: not set in the official file; its backbone dict is merged without _delete_ over the Swin-T base,
# whose drop_path_rate=0.2 reaches VSSM(**kwargs).
# Batch: 4 images per GPU, as the repository's detection/configs/_base_/datasets/coco_instance.py (train
# batch_size=4, num_workers=4; the configs' "# train_dataloader = dict(batch_size=2) # as gpus=8" is commented out),
# and its README trains with `tools/dist_train.sh CONFIG 8`: 32 images per step as published (use 4 GPUs for 16); the
# GPU count of the reported runs is not stated.

# Weights: `zoo:msvmamba_micro` = <weights dir>/msvmamba_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_micro',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_micro')),
    neck=dict(in_channels=[64, 128, 256, 512]))
train_dataloader = dict(batch_size=4, num_workers=4)  # x 8 GPUs (see the header)
