"""MambaOut (Yu & Wang, "MambaOut: Do We Really Need Mamba for Vision?", CVPR 2025), from yuweihao/MambaOut.

MambaOut has no state-space model: it is a 4-stage MetaFormer of Gated CNN blocks (LN -> fc1 -> split into gate /
identity / 7x7 depth-wise conv channels -> GELU(gate) * cat(identity, conv) -> fc2), the "Mamba without SSM"
baseline of the paper. timm ships the official architecture (``timm/models/mambaout.py``; official weights are on
the HF hub as ``timm/mambaout_*.in1k`` and timm's ``checkpoint_filter_fn`` converts the official release files),
so the zoo does not re-implement it: this module lists timm's five official variants in
``vmamba_zoo.list_models()`` (and thus in the zoo's test battery, model cards and tools). ``timm.create_model``
builds timm's own ``MambaOut`` for these names.

Official variants (yuweihao/MambaOut ``models/mambaout.py`` builders, README "Models"):

=================  ==============  ====================  ========  =======  ======
name               depths          dims                  params    MACs     top-1
=================  ==============  ====================  ========  =======  ======
mambaout_femto     (3, 3, 9, 3)    (48, 96, 192, 288)    7.3M      1.2G     78.9
mambaout_kobe      (3, 3, 15, 3)   (48, 96, 192, 288)    9.1M      1.5G     80.0
mambaout_tiny      (3, 3, 9, 3)    (96, 192, 384, 576)   26.5M     4.5G     82.7
mambaout_small     (3, 4, 27, 3)   (96, 192, 384, 576)   48.5M     9.0G     84.1
mambaout_base      (3, 4, 27, 3)   (128, 256, 512, 768)  84.8M     15.8G    84.2
=================  ==============  ====================  ========  =======  ======

Differences from the zoo's own models, all timm's behaviour: no up-front input validation (a wrong channel count
fails inside the first conv with torch's RuntimeError; tiny images are padded through, not rejected); the head is
norm -> MLP (fc 4C, GELU, LN) -> fc, so ``head_hidden_size`` (4C) differs from ``num_features`` (C); the
official training drop-path rates (0.025 femto/kobe, 0.2 tiny, 0.4 small, 0.6 base; ``scripts/train_*.sh``) are not
defaults, pass ``drop_path_rate=`` to train. timm's ``mambaout_*_rw`` variants are timm's own experiments, not the
paper's, and are not listed.
"""
from timm.models.mambaout import MambaOut, checkpoint_filter_fn

from ._registry import expose_timm_model

__all__ = ['MambaOut', 'checkpoint_filter_fn', 'OFFICIAL_VARIANTS']

OFFICIAL_VARIANTS = ('mambaout_femto', 'mambaout_kobe', 'mambaout_tiny', 'mambaout_small', 'mambaout_base')

for _name in OFFICIAL_VARIANTS:
    expose_timm_model(_name)
