# No target: the published Mask R-CNN 1x result, box AP 46.8 / mask AP 41.2 (79M; ChenhongyiYang/PlainMamba
# README.md, "PlainMamba-Adapter-L3"), is for the ViT-Adapter backbone, which is not implemented (what it
# needs: ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py). This config is the official recipe
# (downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l3_maskrcnn_1x.py: drop path 0.3) with the plain
# L3 and a simple pyramid over blocks (8, 17, 26, 35) instead; expect a lower number.

# Weights: `zoo:plainmamba_l3` = <weights dir>/plainmamba_l3.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(model_name='plainmamba_l3', out_indices=(8, 17, 26, 35), drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l3')),
    neck=dict(in_channels=[448, 448, 448, 448]))
