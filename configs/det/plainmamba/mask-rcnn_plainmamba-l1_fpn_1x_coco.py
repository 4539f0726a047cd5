# Paper (ChenhongyiYang/PlainMamba README): Mask R-CNN 1x box AP 44.1 / mask AP 39.1 (31M) with PlainMamba-Adapter-L1. This config
# does NOT reproduce that number: the adapter is not implemented (see ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py);
# the rest follows the official plain_mamba_det_configs/maskrcnn/l1_maskrcnn_1x.py (drop path 0.1).

# Weights: `zoo:plainmamba_l1` = <weights dir>/plainmamba_l1.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(model_name='plainmamba_l1', out_indices=(5, 11, 17, 23), drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l1')),
    neck=dict(in_channels=[192, 192, 192, 192]))
