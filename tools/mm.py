#!/usr/bin/env python
"""Train or test an mmdet / mmseg config (configs/det, configs/seg) with mmengine's Runner.

    python tools/mm.py train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    python tools/mm.py test CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
    torchrun --nproc-per-node 8 tools/mm.py train CONFIG --launcher pytorch      # several GPUs

The config picks the toolbox (its ``default_scope``: mmdet or mmseg) and imports the zoo's backbones
(``custom_imports = dict(imports=['vmamba_zoo.mm'])``). ``--resume`` without a path resumes from the work dir's
last checkpoint (mmengine's ``resume='auto'``); with a path, from that file. ``--work-dir`` defaults to
``work_dirs/<config name>``.

Checkpoints and torch >= 2.6: mmengine 0.10.7 (the last release) calls ``torch.load`` without ``weights_only``,
so torch's ``weights_only=True`` default applies and the runner's own checkpoints fail to load on ``--resume`` /
``test``: their message hub pickles numpy scalars, whose unpickling needs ``builtins.getattr``, a global that
cannot be allow-listed safely. So ``trusted_checkpoints`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` around the
runner (torch then uses ``weights_only=False`` where the caller did not choose): resume and test only files you
trust, e.g. your own runs. Backbone weights (``init_cfg``) are read by ``vmamba_zoo.mm`` with ``weights_only=True``.
"""
import argparse
import contextlib
import os
import os.path as osp
import sys
from typing import Optional, Sequence

_FORCE_NO_WEIGHTS_ONLY = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


@contextlib.contextmanager
def trusted_checkpoints():
    """torch.load with weights_only=False for the calls that do not pass it (mmengine's), restored afterwards."""
    old = os.environ.get(_FORCE_NO_WEIGHTS_ONLY)
    os.environ[_FORCE_NO_WEIGHTS_ONLY] = '1'
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_FORCE_NO_WEIGHTS_ONLY, None)
        else:
            os.environ[_FORCE_NO_WEIGHTS_ONLY] = old


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='mode', required=True)
    for mode in ('train', 'test'):
        p = sub.add_parser(mode)
        p.add_argument('config', help='config file (configs/det/... or configs/seg/...)')
        if mode == 'test':
            p.add_argument('checkpoint', help='checkpoint to evaluate')
            p.add_argument('--out', help='(mmdet) dump raw predictions to this .pkl file')
        else:
            p.add_argument('--resume', nargs='?', const='auto', default=None,
                           help='resume from CKPT, or from the last checkpoint in the work dir when no path is given')
            p.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper)')
        p.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
        p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                       help='override config entries, mmengine style (e.g. train_cfg.max_iters=10)')
        p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                       help="'pytorch' under torchrun for several GPUs")
        p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _parse_cfg_options(options: Sequence[str]) -> dict:
    from mmengine.config import DictAction
    ns = argparse.Namespace(opts=None)
    DictAction(option_strings=[], dest='opts')(None, ns, list(options))
    return ns.opts or {}


def load_config(args):
    from mmengine.config import Config
    if not osp.isfile(args.config):
        raise SystemExit(f'mm.py: config not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(_parse_cfg_options(args.cfg_options))
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.mode == 'train':
        if args.resume == 'auto':
            cfg.resume, cfg.load_from = True, None
        elif args.resume:
            cfg.resume, cfg.load_from = True, args.resume
        if args.amp:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.load_from = args.checkpoint
        if getattr(args, 'out', None):
            cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) else \
                list(cfg.test_evaluator)
            cfg.test_evaluator.append(dict(type='DumpDetResults', out_file_path=args.out))
    return cfg


def main(argv: Optional[Sequence[str]] = None):
    args = build_parser().parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    try:
        from mmengine.runner import Runner
    except ImportError:
        raise SystemExit('mm.py needs the mm stack: run tools/install_mm.sh') from None
    cfg = load_config(args)
    with trusted_checkpoints():
        runner = Runner.from_cfg(cfg)
        if args.mode == 'train':
            runner.train()
            return None
        return runner.test()


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repo, for a checkout without install
    main()
