# Paper (ChenhongyiYang/PlainMamba README): Mask R-CNN 1x box AP 46.8 / mask AP 41.2 (79M) with PlainMamba-Adapter-L3. This config
# does NOT reproduce that number: the adapter is not implemented (see ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py);
# the rest follows the official plain_mamba_det_configs/maskrcnn/l3_maskrcnn_1x.py (drop path 0.3).

# Weights: `zoo:plainmamba_l3` = <weights dir>/plainmamba_l3.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(model_name='plainmamba_l3', out_indices=(8, 17, 26, 35), drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l3')),
    neck=dict(in_channels=[448, 448, 448, 448]))
