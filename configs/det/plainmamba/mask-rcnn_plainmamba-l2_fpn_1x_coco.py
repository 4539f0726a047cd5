# No target: the published Mask R-CNN 1x result, box AP 46.0 / mask AP 40.6 (53M; ChenhongyiYang/PlainMamba
# README.md, "PlainMamba-Adapter-L2"), is for the ViT-Adapter backbone, which is not implemented (what it
# needs: ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py). This config is the official recipe
# (downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l2_maskrcnn_1x.py: drop path 0.2) with the plain
# L2 and a simple pyramid over blocks (5, 11, 17, 23) instead; expect a lower number.

# Weights: `zoo:plainmamba_l2` = <weights dir>/plainmamba_l2.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or ~/.cache/vmamba_zoo).
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(model_name='plainmamba_l2', out_indices=(5, 11, 17, 23), drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l2')),
    neck=dict(in_channels=[384, 384, 384, 384]))
