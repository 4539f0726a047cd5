#!/usr/bin/env python
"""Check the zoo's MSVMamba against the official implementation, on CPU, with random weights.

    git --git-dir=MSVMamba.git archive master | tar -x -C /tmp/msvmamba       # N / M / T (arXiv v1)
    git --git-dir=MSVMamba.git archive v2 | tar -x -C /tmp/msvmamba_v2        # MSVMambav3 T / S / B (NeurIPS)
    python tools/verify_official_msvmamba.py --repo /tmp/msvmamba /tmp/msvmamba_v2 [--models ...] [--flops]

``--repo`` takes one or more local checkouts of YuHengsss/MSVMamba; each is recognised by its configs
(``classification/configs/ms_vssm``: branch ``master``, ``classification/configs/msv2``: branch ``v2``) and the
variants of that branch are checked (``--models`` picks among them). For each variant the script builds the
official ``VSSM`` (``classification/models/vmamba.py`` of that branch) with the arguments
``classification/models/__init__.py`` ``build_vssm_model`` passes for the variant's yaml over that branch's
``classification/config.py`` defaults (master: ``configs/ms_vssm/vssm_{nano,micro,tiny}_224_ms.yaml``; v2:
``configs/msv2/msvmambav3_{tiny,small,base}_224.yaml``), perturbs its weights, converts its state_dict with the
zoo's ``checkpoint_filter_fn``, loads it strictly and compares logits in eval mode at even and odd input sizes
(odd maps exercise the padded patch merging, the stride-2 low-resolution branch and its upsampling).
``--flops`` also counts FLOPs at 224^2 with the official ``VSSM.flops()`` (fvcore ``flop_count`` with its
``supported_ops`` and selective-scan handle; its ``.cuda()`` is made a no-op and its printing silenced for the
call), next to the zoo's ``count_flops``; the check then also requires them to agree within ``--flops-rtol``.
``--float64`` runs the comparison in double precision, where equal computations agree to ~1e-14.

The official code imports compiled CUDA selective-scan modules; this script registers stand-ins that run the
zoo's sequential reference scan ``selective_scan_naive`` (the same recurrence), so nothing needs compiling:
``selective_scan_cuda_core.fwd`` and ``selective_scan_cuda.fwd`` (master ``utils.SelectiveScan``) and
``selective_scan_cuda_oflex.fwd`` (v2 ``csms6s.SelectiveScanOflex``, the path of ``vms`` / ``vms_noz``; ``oflex``
returns fp32 for half inputs). The v2 branch's ``vmamba.py`` also imports ``linear_attn``
(``GatedLinearAttention``, ``ConvLayer``, ``Stem``, ``PatchMerging``), a file the branch does not contain; those
names are only used by its ``linearAttention`` forward type and ``linearattn`` stem / downsample, which no
MSVMambav3 config selects, so the script registers placeholders that raise if built. v2 also imports ``triton``
at the top (its Triton cross-scan kernels serve other forward types and are never launched here); where Triton
is not installed a placeholder module with a no-op ``triton.jit`` stands in. It also needs ``einops``
(``pip install einops``) and ``fvcore``.

Exits 1 if any model's parameter count, logits (``--atol``) or, with ``--flops``, FLOPs disagree.
"""
import argparse
import builtins
import contextlib
import importlib
import importlib.util
import logging
import sys
import types
import warnings
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vmamba_zoo  # noqa: E402,F401
from vmamba_zoo.models.msvmamba import checkpoint_filter_fn  # noqa: E402
from vmamba_zoo.ops.selective_scan import selective_scan_naive  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _official_check import add_comparison_args, compare_with_official, perturb_official_  # noqa: E402

# build_vssm_model's arguments from each branch's config.py defaults with the values every yaml of the branch sets
_MASTER = dict(
    patch_size=4, in_chans=3, num_classes=1000, ssm_d_state=1, ssm_ratio=2.0, ssm_rank_ratio=2.0, ssm_dt_rank='auto',
    ssm_act_layer='silu', ssm_conv=3, ssm_conv_bias=True, ssm_drop_rate=0.0, ssm_simple_init=False,
    forward_type='v2', mlp_ratio=0.0, mlp_act_layer='gelu', mlp_drop_rate=0.0, drop_path_rate=0.2, patch_norm=True,
    norm_layer='ln', downsample_version='v1', patchembed_version='v1', use_checkpoint=False, recurrent=False,
    sscore_type='multiscale_4scan_12', inter_block_ssm=False, grid_size=0, multiscale_ratio=[], multiscale_ksize=[],
    continous_patch=False, adaptive_merge=False, add_conv=True, b1_seq=False, b1_ratio=0.5, add_se=True,
    ms_fusion=None, up_sample='interpolate', convFFN=True, lpu=False, sep_norm=False, ms_stage=[0, 1, 2, 3],
    ms_split=[1, 3], ffn_dropout=0.0)
_V2 = dict(
    patch_size=4, in_chans=3, num_classes=1000, ssm_d_state=1, ssm_ratio=1.0, ssm_rank_ratio=2.0, ssm_dt_rank='auto',
    ssm_act_layer='silu', ssm_conv=3, ssm_conv_bias=True, ssm_drop_rate=0.0, ssm_init='v0', mlp_ratio=4.0,
    mlp_act_layer='gelu', mlp_drop_rate=0.0, patch_norm=True, norm_layer='ln2d', downsample_version='v3',
    patchembed_version='v2', gmlp=False, use_checkpoint=False, posembed=False, imgsize=224, pre_norm=False,
    add_se=True, convffn=True, axis_stage=[], num_heads=[1, 2, 4, 8], conv_ffn_ratio=4, full_res_index=1)

# zoo name -> (branch, the yaml's own values)
VARIANTS = {
    'msvmamba_nano': ('master', dict(_MASTER, dims=48, depths=[1, 2, 5, 2])),
    'msvmamba_micro': ('master', dict(_MASTER, dims=64, depths=[1, 2, 5, 2])),
    'msvmamba_tiny': ('master', dict(_MASTER, dims=96, depths=[1, 2, 9, 2])),
    'msvmambav3_tiny': ('v2', dict(_V2, dims=96, depths=[2, 2, 9, 2], forward_type='vms_noz', drop_path_rate=0.2)),
    'msvmambav3_small': ('v2', dict(_V2, dims=96, depths=[2, 3, 20, 2], forward_type='vms_noz', drop_path_rate=0.4)),
    'msvmambav3_base': ('v2', dict(_V2, dims=128, depths=[2, 4, 18, 2], forward_type='vms', drop_path_rate=0.5)),
}


def _scan(u, delta, A, B, C, D, delta_bias, delta_softplus, z=None, out_float=False):
    out = selective_scan_naive(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
    if out_float and out.dtype in (torch.float16, torch.bfloat16):  # oflex: fp32 out for half inputs
        out = out.float()
    return out, None  # (out, the kernel's saved states: unused without backward)


def _install_stand_ins(package):
    core = types.ModuleType('selective_scan_cuda_core')  # fwd(u, delta, A, B, C, D, delta_bias, softplus, nrows)
    core.fwd = lambda u, delta, A, B, C, D, delta_bias, softplus, *_nrows: _scan(u, delta, A, B, C, D, delta_bias,
                                                                                 softplus)
    mamba = types.ModuleType('selective_scan_cuda')  # fwd(u, delta, A, B, C, D, z, delta_bias, softplus)
    mamba.fwd = lambda u, delta, A, B, C, D, z, delta_bias, softplus, *_: _scan(u, delta, A, B, C, D, delta_bias,
                                                                                softplus, z=z)
    # fwd(u, delta, A, B, C, D, delta_bias, softplus, nrows, oflex)
    oflex = types.ModuleType('selective_scan_cuda_oflex')
    oflex.fwd = lambda u, delta, A, B, C, D, delta_bias, softplus, _nrows=1, out_float=True: _scan(
        u, delta, A, B, C, D, delta_bias, softplus, out_float=out_float)
    for mod in (core, mamba, oflex):
        sys.modules.setdefault(mod.__name__, mod)

    linear_attn = types.ModuleType('linear_attn')
    for cls in ('GatedLinearAttention', 'ConvLayer', 'Stem', 'PatchMerging'):
        def init(self, *_a, _name=cls, **_k):
            raise NotImplementedError(f'linear_attn.{_name}: placeholder (the v2 branch lacks linear_attn.py; no '
                                      'MSVMambav3 config uses it)')
        setattr(linear_attn, cls, type(cls, (torch.nn.Module,), {'__init__': init}))
    sys.modules.setdefault('linear_attn', linear_attn)
    sys.modules.setdefault(f'{package}.linear_attn', linear_attn)

    if importlib.util.find_spec('triton') is None:
        class _Anything:  # tl.constexpr annotations and the like, evaluated when the kernels are defined
            def __getattr__(self, _name):
                return _Anything()

            def __call__(self, *_a, **_k):
                return _Anything()

        triton = types.ModuleType('triton')
        triton.jit = lambda fn=None, **_k: fn if fn is not None else (lambda f: f)
        triton.language = types.ModuleType('triton.language')
        triton.language.__getattr__ = lambda _name: _Anything()
        sys.modules['triton'], sys.modules['triton.language'] = triton, triton.language


def _branch_of(repo: Path) -> str:
    configs = repo / 'classification' / 'configs'
    if (configs / 'msv2').is_dir():
        return 'v2'
    if (configs / 'ms_vssm').is_dir():
        return 'master'
    raise SystemExit(f'{repo}: not a YuHengsss/MSVMamba checkout (no classification/configs/ms_vssm or msv2)')


def _import_official(repo: Path, branch: str):
    """``classification/models/vmamba.py`` of a checkout, as ``<package>.vmamba`` of a package of its own, so that
    the two branches can be loaded side by side (their relative imports stay inside their checkout)."""
    package = f'_official_msvmamba_{branch}'
    pkg = types.ModuleType(package)
    pkg.__path__ = [str(repo / 'classification' / 'models')]
    sys.modules[package] = pkg
    _install_stand_ins(package)
    with warnings.catch_warnings():  # torch.cuda.amp.custom_fwd / timm.models.layers deprecations
        warnings.simplefilter('ignore')
        return importlib.import_module(f'{package}.vmamba')


@contextlib.contextmanager
def _official_flops_context():
    cuda, quiet = torch.nn.Module.cuda, builtins.print
    torch.nn.Module.cuda = lambda self, device=None: self
    builtins.print = lambda *a, **k: None  # the official flop handles print their inputs' names
    logging.getLogger('fvcore').setLevel(logging.ERROR)  # its per-op 'unsupported operator' report
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        torch.nn.Module.cuda, builtins.print = cuda, quiet


def _official_flops(ref):
    """``VSSM.flops()`` itself (deepcopy, eval, fvcore ``flop_count`` with its ``supported_ops``) on the CPU."""
    with _official_flops_context():
        return int(round(ref.flops((3, 224, 224))))


def _size(text):
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', nargs='+', required=True, type=Path,
                    help='local checkout(s) of YuHengsss/MSVMamba: branch master and/or branch v2')
    ap.add_argument('--models', nargs='+', choices=list(VARIANTS),
                    help='default: every variant of the branches given')
    ap.add_argument('--sizes', nargs='+', type=_size, default=[(64, 96), (100, 76), (36, 44)],
                    help='input sizes HxW (default 64x96 100x76 36x44)')
    add_comparison_args(ap)
    args = ap.parse_args()

    repos = {}
    for repo in args.repo:
        branch = _branch_of(repo)
        if branch in repos:
            raise SystemExit(f'--repo: two checkouts of branch {branch}: {repos[branch]} and {repo}')
        repos[branch] = repo
    models = args.models or [name for name, (branch, _) in VARIANTS.items() if branch in repos]
    missing = sorted({VARIANTS[name][0] for name in models} - set(repos))
    if missing:
        raise SystemExit(f'--models needs a checkout of branch {", ".join(missing)} in --repo')
    official = {branch: _import_official(repo, branch) for branch, repo in repos.items()
                if any(VARIANTS[name][0] == branch for name in models)}

    failures = 0
    for name in models:
        branch, kwargs = VARIANTS[name]
        torch.manual_seed(0)
        ref = official[branch].VSSM(**kwargs).eval()
        perturb_official_(ref)
        ours = timm.create_model(name).eval()
        ours.load_state_dict(checkpoint_filter_fn({'model': ref.state_dict()}, ours), strict=True)
        failures += not compare_with_official(f'{name:<17} ({branch})', ref, ours, args, _official_flops)
        del ref, ours
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
