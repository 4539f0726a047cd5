# No target: the published Mask R-CNN 1x result, box AP 44.1 / mask AP 39.1 (31M; ChenhongyiYang/PlainMamba
# README.md, "PlainMamba-Adapter-L1"), is for the ViT-Adapter backbone, which is not implemented (what it
# needs: ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py). This config is the official recipe
# (downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l1_maskrcnn_1x.py: drop path 0.1) with the plain
# L1 and a simple pyramid over blocks (5, 11, 17, 23) instead; expect a lower number.

# Weights: `zoo:plainmamba_l1` = <weights dir>/plainmamba_l1.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(model_name='plainmamba_l1', out_indices=(5, 11, 17, 23), drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l1')),
    neck=dict(in_channels=[192, 192, 192, 192]))
