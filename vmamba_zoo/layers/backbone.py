"""The timm-facing scaffolding the zoo's models share: ``HierarchicalBackbone`` (4-stage, NHWC inside) and
``PlainBackbone`` (isotropic: patch embedding -> blocks -> norm, Vim and PlainMamba).

A family subclasses ``HierarchicalBackbone`` and builds, in its ``__init__``: ``self.stem`` (image -> NHWC map),
``self.stages`` (an ``nn.Sequential`` of stages, each with a ``grad_checkpointing`` attribute), ``self.norm``
(per-token norm before pooling, or ``nn.Identity``), ``self.head`` (a timm ``ClassifierHead`` with
``input_fmt='NHWC'``), ``self.feature_info``, ``self.num_classes`` and ``self.num_features`` /
``self.head_hidden_size``. The classifier API (``forward_features`` / ``forward_head``, ``reset_classifier``,
``forward_intermediates`` for ``features_only``, grad checkpointing, layer-decay groups) then comes from here, so
no family re-writes it. ``PlainBackbone`` holds the block-level part of that API (grad checkpointing, layer-decay
groups, pruning) for the plain families, which keep their own token handling (class token, position embedding).
"""
from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from timm.layers import trunc_normal_
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices

__all__ = ['HierarchicalBackbone', 'init_linear_trunc_normal']


def init_linear_trunc_normal(m: nn.Module, std: float = .02):
    """The init of Swin-derived backbones (VMamba ``VSSM._init_weights`` and its forks): Linear trunc-normal(std)
    with zero bias, LayerNorm weight 1 / bias 0; everything else keeps its own init. Use as ``model.apply(...)``."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=std)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        if m.weight is not None:
            nn.init.ones_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def check_output_fmt(output_fmt: str) -> None:
    if output_fmt not in ('NCHW', 'NHWC'):
        raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC'; got {output_fmt!r}")


def prune_layers(model: nn.Module, attr: str, indices: Union[int, List[int]], prune_norm: bool,
                 prune_head: bool) -> List[int]:
    """timm's ``prune_intermediate_layers`` over ``model.<attr>`` (stages or blocks): keep what the taken indices
    need, optionally drop the final norm and the classifier."""
    layers = getattr(model, attr)
    take_indices, max_index = feature_take_indices(len(layers), indices)
    setattr(model, attr, layers[:max_index + 1])
    if prune_norm:
        model.norm = nn.Identity()
    if prune_head:
        model.reset_classifier(0, '')
    return take_indices


class Stage(nn.Module):
    """One stage of a hierarchical family: ``downsample`` (or none) then ``blocks`` on the NHWC map, the blocks
    checkpointed when ``grad_checkpointing`` is set (``HierarchicalBackbone.set_grad_checkpointing``). State-dict
    names: ``downsample.*``, ``blocks.<i>.*``."""

    def __init__(self, downsample: Optional[nn.Module], blocks):
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.downsample(x))


class PlainBackbone(nn.Module):
    """Base class of the plain families: ``self.blocks`` (a sequence of blocks), ``self.norm``,
    ``self.grad_checkpointing`` (read by the subclass's forward); ``stem_params`` names the parameters before the
    first block for layer-wise groups (position embedding, patch embedding, class token)."""

    stem_params = r'^pos_embed|^patch_embed'

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(stem=self.stem_params, blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        return prune_layers(self, 'blocks', indices, prune_norm, prune_head)


class HierarchicalBackbone(nn.Module):
    """Base class: stem -> stages -> norm -> head, NHWC between stages, NCHW (or NHWC) intermediates."""

    output_fmt = 'NHWC'

    @torch.jit.ignore
    def no_weight_decay(self):
        # Mamba's A_logs and Ds are marked ``_no_weight_decay`` in the official mamba_init (VMamba and forks)
        return {'*A_logs', '*Ds'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(
            stem=r'^stem',
            blocks=r'^stages\.(\d+)' if coarse else [
                (r'^stages\.(\d+)\.downsample', (0,)),
                (r'^stages\.(\d+)\.blocks\.(\d+)', None),
                (r'^norm', (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (before the final norm; the official detection backbones add their own per-level norms)."""
        check_output_fmt(output_fmt)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        x = self.stem(x)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(x.permute(0, 3, 1, 2).contiguous() if output_fmt == 'NCHW' else x)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        return prune_layers(self, 'stages', indices, prune_norm, prune_head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
