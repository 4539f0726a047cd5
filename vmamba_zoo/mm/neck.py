"""The ViTDet simple feature pyramid as an mmdet neck, and a channels-first LayerNorm for mm ``norm_cfg``.

``ViTDetSimpleFPN`` turns the single stride-16 map of a plain backbone into the five levels (strides 4, 8, 16, 32,
64) that mmdet's RPN / RoI heads expect, the way ViTDet's ``SimpleFeaturePyramid`` does it (the detectron2 copy in
hustvl/Vim ``det/detectron2/modeling/backbone/vit.py``, used by Vim's COCO configs
``det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_*``):

* per output level a rescaling of the input map: x4 = deconv 2x2 (C -> C/2) -> norm -> GELU -> deconv 2x2
  (C/2 -> C/4); x2 = deconv 2x2 (C -> C/2); x1 = nothing; /2 = 2x2 max pool;
* then a 1x1 conv to ``out_channels`` -> norm and a 3x3 conv -> norm (convs without bias when there is a norm);
* the top level is a stride-2 subsampling (max pool, kernel 1) of the last rescaled level (detectron2's
  ``LastLevelMaxPool``, mmdet FPN's ``add_extra_convs=False``).

Norms: ``norm_cfg=dict(type='LN2d', eps=1e-6)`` (default) is the channels-first LayerNorm of ViTDet (over the
channel axis of an NCHW map). ``LN2d`` is registered in mmengine's root ``MODELS`` (where mmcv keeps 'BN', 'LN',
...), so the heads' ``norm_cfg`` (ConvModule) finds it from any scope and a config can put the LayerNorm into
Shared4Conv1FCBBoxHead / FCNMaskHead as ViTDet's ``conv_norm='LN'``. Give ``eps=1e-6`` there:
``mmcv.cnn.build_norm_layer`` fills in eps=1e-5 when the config has none.
"""
from typing import Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d

__all__ = ['LN2d', 'ViTDetSimpleFPN']


class LN2d(LayerNorm2d):
    """LayerNorm over the channels of an NCHW map (ViTDet's ``LayerNorm``, eps 1e-6), usable as an mm
    ``norm_cfg=dict(type='LN2d')``. ``num_features`` first, as ``build_norm_layer`` calls norm classes."""
    _abbr_ = 'ln'

    def __init__(self, num_features: int, eps: float = 1e-6, affine: bool = True):
        super().__init__(num_features, eps=eps, affine=affine)


def _norm(norm_cfg: Optional[dict], channels: int) -> nn.Module:
    if norm_cfg is None:
        return nn.Identity()
    from mmcv.cnn import build_norm_layer
    return build_norm_layer(dict(norm_cfg), channels)[1]


class ViTDetSimpleFPN(BaseModule):
    """ViTDet's simple feature pyramid (see the module docstring).

    Args:
        in_channels: channels of the backbone map (an int, or a one-element list as the backbone's
            ``out_channels``).
        out_channels: channels of every output level (ViTDet: 256).
        scale_factors: rescaling of the input map per level, among 4, 2, 1 and 0.5 (ViTDet: (4, 2, 1, 0.5), i.e.
            strides 4 / 8 / 16 / 32 from a stride-16 map).
        num_outs: number of outputs; one more than ``len(scale_factors)`` adds the max-pooled top level.
        norm_cfg: norm of the x4 branch and after both convs (``None``: no norm, convs with bias).
        in_index: which map of the backbone's tuple to use (default: the last).
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5), num_outs: int = 5,
                 norm_cfg: Optional[dict] = dict(type='LN2d', eps=1e-6), in_index: int = -1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int):
            in_channels = list(in_channels)
            if len(in_channels) != 1:
                raise ValueError(f'ViTDetSimpleFPN takes one backbone map; got in_channels={in_channels}')
            in_channels = in_channels[0]
        if num_outs not in (len(scale_factors), len(scale_factors) + 1):
            raise ValueError(f'num_outs must be len(scale_factors) or one more; got {num_outs} for {scale_factors}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = num_outs
        self.in_index = in_index
        bias = norm_cfg is None
        c = in_channels
        self.stages = nn.ModuleList()
        for scale in self.scale_factors:
            if scale == 4.0:
                if c % 4:
                    raise ValueError(f'a x4 level needs in_channels divisible by 4; got {c}')
                rescale = [nn.ConvTranspose2d(c, c // 2, 2, stride=2), _norm(norm_cfg, c // 2), nn.GELU(),
                           nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2)]
                dim = c // 4
            elif scale == 2.0:
                if c % 2:
                    raise ValueError(f'a x2 level needs even in_channels; got {c}')
                rescale, dim = [nn.ConvTranspose2d(c, c // 2, 2, stride=2)], c // 2
            elif scale == 1.0:
                rescale, dim = [], c
            elif scale == 0.5:
                rescale, dim = [nn.MaxPool2d(2, stride=2)], c
            else:
                raise ValueError(f'ViTDetSimpleFPN scale factors are 4, 2, 1 or 0.5; got {scale}')
            self.stages.append(nn.Sequential(
                *rescale,
                nn.Conv2d(dim, out_channels, 1, bias=bias), _norm(norm_cfg, out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias), _norm(norm_cfg, out_channels)))

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]):
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[self.in_index]
        outs = [stage(x) for stage in self.stages]
        if self.num_outs > len(outs):
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
