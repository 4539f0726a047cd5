# Target: Mask R-CNN 3x (multi-scale), COCO val2017 box AP 50.0 / mask AP 44.6 (59M, 325G) (YuHengsss/VSSD
# (87b753b356dd) readme.md).
# Official config: none. YuHengsss/VSSD (87b753b356dd) has no 3x file for Small (only micro_3x / tiny_3x) and its
# readme row has no log and links the 1x checkpoint file name (mask_rcnn_vssd_fpn_coco_small.pth); built like the
# micro / tiny 3x files: the 3x base + the Small 1x backbone.
# Recipe (../_base_/mask-rcnn_fpn_ms-3x_coco.py = the official file's base
# detection/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py): AdamW lr 1e-4, wd 0.05, no decay on norms,
# 36 epochs, lr x0.1 at 27 and 33, 1000-iteration warm-up, multi-scale 480-800 resize or DETR-style crop.
# Drop path 0.4: the official Small 1x file.
# Batch: 2 images per GPU (the repository's coco_instance.py) x 8 GPUs (readme.md: `bash ./tools/dist_train.sh
# </path/to/config> 8`) = 16.

# Weights: `zoo:vssd_small` = <weights dir>/vssd_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_ms-3x_coco.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_small')),
    neck=dict(in_channels=[64, 128, 256, 512]))
