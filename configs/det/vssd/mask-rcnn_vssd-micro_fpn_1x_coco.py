# Target: Mask R-CNN 1x, COCO val2017 box AP 45.4 / mask AP 41.3 (33M, 220G) (YuHengsss/VSSD (87b753b356dd)
# readme.md, "Object Detection on COCO").
# Official config: YuHengsss/VSSD (87b753b356dd) detection/configs/vssd/mask_rcnn_vssd_fpn_coco_micro.py.
# Recipe (../_base_/mask-rcnn_fpn_1x_coco.py = the official file's base
# detection/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py): AdamW lr 1e-4, wd 0.05, no decay on norms, 12
# epochs, lr x0.1 at 8 and 11, 1000-iteration linear warm-up, 1333 x 800 single scale.
# Drop path 0.1: set in the official file (the backbone takes it directly; ImageNet training effectively used 0.2).
# Batch: 2 images per GPU (the repository's coco_instance.py) x 8 GPUs (readme.md: `bash ./tools/dist_train.sh
# </path/to/config> 8`) = 16.

# Weights: `zoo:vssd_micro` = <weights dir>/vssd_micro.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='VSSDBackbone',
        model_name='vssd_micro',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:vssd_micro')),
    neck=dict(in_channels=[48, 96, 192, 384]))
