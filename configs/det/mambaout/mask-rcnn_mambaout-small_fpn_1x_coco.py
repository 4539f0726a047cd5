# Mask R-CNN 1x with mambaout_small. yuweihao/MambaOut has no detection / segmentation code or result in its
# repository; the paper's Mask R-CNN / UperNet tables were not checked here, so no target number is claimed. Drop
# path: the ImageNet training value of the variant (scripts/train_mambaout_*.sh).

# Weights: `zoo:mambaout_small` = <weights dir>/mambaout_small.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='MambaOutBackbone',
        model_name='mambaout_small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:mambaout_small')),
    neck=dict(in_channels=[96, 192, 384, 576]))
