# Paper (ChenhongyiYang/PlainMamba README): Mask R-CNN 1x box AP 46.0 / mask AP 40.6 (53M) with PlainMamba-Adapter-L2. This config
# does NOT reproduce that number: the adapter is not implemented (see ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py);
# the rest follows the official plain_mamba_det_configs/maskrcnn/l2_maskrcnn_1x.py (drop path 0.2).

# Weights: `zoo:plainmamba_l2` = <weights dir>/plainmamba_l2.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(model_name='plainmamba_l2', out_indices=(5, 11, 17, 23), drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l2')),
    neck=dict(in_channels=[384, 384, 384, 384]))
