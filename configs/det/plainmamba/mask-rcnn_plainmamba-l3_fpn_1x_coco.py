# Target: Mask R-CNN 1x with PlainMamba-Adapter-L3: box AP 46.8 / mask AP 41.2, 79M parameters
# (ChenhongyiYang/PlainMamba README.md at 0975a1d, table "COCO Mask R-CNN 1x Schedule", row PlainMamba-Adapter-L3).
# Recipe and backbone arguments: downstream/mmdetection/plain_mamba_det_configs/maskrcnn/l3_maskrcnn_1x.py
# (conv_inplane 64, n_points 4, deform_num_heads 8, cffn_ratio 0.25, deform_ratio 1.0,
# interaction_indexes [[0, 8], [9, 17], [18, 26], [27, 35]], drop path 0.3, final_norm False, ImageNet l3.pth)
# over template/maskrcnn_1x.py; the shared part is ../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py.

# Weights: `zoo:plainmamba_l3` = <weights dir>/plainmamba_l3.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo): the official ImageNet file (Hugging Face ChenhongyiYang/PlainMamba l3.pth) or its
# tools/convert.py output.
_base_ = ['../_base_/mask-rcnn_plainmamba_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        model_name='plainmamba_l3',
        deform_num_heads=8,
        interaction_indexes=[[0, 8], [9, 17], [18, 26], [27, 35]],
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:plainmamba_l3')),
    neck=dict(in_channels=[448, 448, 448, 448]))
