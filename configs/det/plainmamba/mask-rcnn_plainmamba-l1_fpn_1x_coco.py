# Target: Mask R-CNN 1x with PlainMamba-Adapter-L1: box AP 44.1 / mask AP 39.1, 31M parameters
# (ChenhongyiYang/PlainMamba README.md at 0975a1d, table "COCO Mask R-CNN 1x Schedule", row PlainMamba-Adapter-L1).
# Recipe and backbone arguments: downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l1_maskrcnn_1x.py
# (conv_inplane 64, n_points 4, deform_num_heads 6, cffn_ratio 0.25, deform_ratio 1.0,
# interaction_indexes [[0, 5], [6, 11], [12, 17], [18, 23]], drop path 0.1, final_norm False, ImageNet l1.pth)
# over template/maskrcnn_1x.py; the shared part is ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py.

# Weights: `zoo:plainmamba_l1` = <weights dir>/plainmamba_l1.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo): the official ImageNet file (Hugging Face ChenhongyiYang/PlainMamba l1.pth) or its
# tools/convert.py output.
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        model_name='plainmamba_l1',
        deform_num_heads=6,
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l1')),
    neck=dict(in_channels=[192, 192, 192, 192]))
