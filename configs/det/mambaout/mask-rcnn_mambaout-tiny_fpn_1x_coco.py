# Mask R-CNN 1x with mambaout_tiny. yuweihao/MambaOut has no detection / segmentation code or result in its
# repository; the paper's Mask R-CNN / UperNet tables were not checked here, so no target number is claimed. Drop
# path: the ImageNet training value of the variant (scripts/train_mambaout_*.sh).

# Weights: `zoo:mambaout_tiny` = <weights dir>/mambaout_tiny.{safetensors,pth} (VMAMBA_ZOO_WEIGHTS or
# ~/.cache/vmamba_zoo;
# the official ImageNet file as released, or tools/convert.py output).
_base_ = ['../_base_/mask-rcnn_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='MambaOutBackbone',
        model_name='mambaout_tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='zoo:mambaout_tiny')),
    neck=dict(in_channels=[96, 192, 384, 576]))
