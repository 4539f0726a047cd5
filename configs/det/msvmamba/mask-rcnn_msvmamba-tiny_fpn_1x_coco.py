# Target: Mask R-CNN 1x, COCO val2017 box AP 46.9 / mask AP 42.2 (53M, 252G) (YuHengsss/MSVMamba (master,
# c39401918e94) README.md, "Object Detection on COCO").
# Official config: YuHengsss/MSVMamba (master, c39401918e94)
# detection/configs/ms_vssm/mask_rcnn_ms_vssm_fpn_coco_tiny.py.
# Recipe (../_base_/mask-rcnn_fpn_1x_coco.py = the official file's base
# detection/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py): AdamW lr 1e-4, wd 0.05, no decay on norms, 12
# epochs, lr x0.1 at 8 and 11, 1000-iteration linear warm-up, 1333 x 800 single scale.
# Drop path 0.2: not set in the official file; its backbone dict is merged without _delete_ over the Swin-T base,
# whose drop_path_rate=0.2 reaches VSSM(**kwargs).
# Batch: 4 images per GPU, as the repository's detection/configs/_base_/datasets/coco_instance.py (train
# batch_size=4, num_workers=4; the configs' "# train_dataloader = dict(batch_size=2) # as gpus=8" is commented out),
# and its README trains with `tools/dist_train.sh CONFIG 8`: 32 images per step as published (use 4 GPUs for 16); the
# GPU count of the reported runs is not stated.

# Weights: `zoo:msvmamba_tiny` = <weights dir>/msvmamba_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='MSVMambaBackbone',
        model_name='msvmamba_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:msvmamba_tiny')),
    neck=dict(in_channels=[96, 192, 384, 768]))
train_dataloader = dict(batch_size=4, num_workers=4)  # x 8 GPUs (see the header)
