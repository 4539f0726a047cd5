#!/usr/bin/env python
"""ImageNet-style classification training and evaluation for any timm model (zoo models included).

    # one process (CPU or one GPU)
    python tools/train.py --config configs/cls/vmamba/vmamba_tiny.yaml --data DATA --output OUT
    # several processes (NCCL on GPUs, gloo on CPU), same code
    torchrun --nproc_per_node 8 tools/train.py --config configs/cls/vmamba/vmamba_tiny.yaml --data DATA --output OUT
    # continue exactly where OUT/last.pth stopped (or --resume PATH)
    python tools/train.py --config ... --data DATA --output OUT --resume
    # top-1 / top-5 of a checkpoint on DATA/val
    python tools/train.py --config ... --data DATA --eval-only --checkpoint OUT/best.pth [--use-ema]
    # override any config value: --set key=value ... (YAML values); see configs/cls/_base_/default.yaml
    python tools/train.py --config ... --data DATA --output OUT --set lr=1.0e-3 model_kwargs.scan=bidirectional

DATA is an ImageFolder tree: DATA/train/<class>/*.{jpg,png,...} and DATA/val/<class>/*.
``tools/make_synthetic.py imagefolder --out DATA`` writes a small learnable one.

Everything is timm's: ``create_dataset`` / ``create_transform`` (RandAugment, random erasing), ``Mixup``,
``SoftTargetCrossEntropy``, ``create_optimizer_v2`` (no weight decay on 1-D parameters, biases and the model's
``no_weight_decay()``), ``create_scheduler_v2`` (per-step warm-up + cosine), ``ModelEmaV3``, ``NativeScaler``.
What this file adds is the glue: YAML configs with command-line overrides, torchrun / DDP, and checkpoints that
resume exactly.

Checkpoints (``OUT/last.pth`` at the end of every epoch and every ``checkpoint_every_steps`` optimizer steps,
``OUT/best.pth``) are written atomically (temporary file + ``os.replace``) and hold only tensors and plain
containers, so they load with ``torch.load(weights_only=True)``: model, EMA, optimizer, scheduler, AMP scaler,
epoch, step, the RNG states of every rank, the config. The weights sit under ``'model'`` (EMA: ``'model_ema'``), so
``timm.create_model(name, pretrained=True, num_classes=N, pretrained_cfg_overlay=dict(file='OUT/best.pth',
num_classes=N))`` loads them too: timm takes the EMA weights when the file has them, and without the overlay's
``num_classes`` keeps the backbone and re-initialises the head.

Determinism: every epoch starts from RNG seeds derived from (seed, epoch, rank) and a data order drawn from
(seed, epoch), so resuming from an epoch-end checkpoint reproduces the uninterrupted run bit for bit on the same
machine (CPU; on GPU as far as the kernels are deterministic, see ``deterministic``). A mid-epoch (step)
checkpoint continues with the same remaining samples, optimizer and schedule; it is bit-exact with ``workers: 0``
(the restored RNG states drive the augmentation), while worker processes restart their random streams.
"""
import argparse
import csv
import difflib
import json
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import yaml
from PIL import Image, ImageOps
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

import timm
from timm.data import Mixup, create_dataset, create_transform
from timm.data import auto_augment as timm_auto_augment
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2, get_optimizer_info
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, NativeScaler, accuracy, dispatch_clip_grad

REPO = Path(__file__).resolve().parents[1]
try:
    import vmamba_zoo  # noqa: F401  (registers the zoo's models with timm)
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))
    import vmamba_zoo  # noqa: F401


def _posterize(img, bits_to_keep, **_):
    """timm's RandAugment posterize, with 0 bits kept giving the black image it always gave (timm auto_augment.py:
    'This results in black image'). Pillow 13 (installed here) raises for bits < 1, and the paper recipe
    ``rand-m9-mstd0.5-inc1`` reaches 0 bits whenever the magnitude noise hits 10 (~2% of PosterizeIncreasing
    draws): unpatched, ImageNet training crashes within the first epoch."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep < 1:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def _patch_timm_posterize():
    try:
        ImageOps.posterize(Image.new('RGB', (1, 1)), 0)
    except ValueError:
        for name in ('Posterize', 'PosterizeIncreasing', 'PosterizeOriginal'):
            timm_auto_augment.NAME_TO_OP[name] = _posterize


_patch_timm_posterize()

DEFAULT_CONFIG = REPO / 'configs' / 'cls' / '_base_' / 'default.yaml'
CHECKPOINT_FORMAT = 'vmamba_zoo.train/1'
CSV_FIELDS = ('epoch', 'global_step', 'lr', 'train_loss', 'val_loss', 'val_top1', 'val_top5',
              'ema_val_loss', 'ema_val_top1', 'ema_val_top5', 'epoch_time_s')

# ----------------------------------------------------------------------------------------------------------- config
# keys that may be null although their default is not
_NULLABLE = {'auto_augment', 'clip_grad', 'drop_path', 'color_jitter'}
# keys whose value may be a bool or a string (torch.compile mode)
_BOOL_OR_STR = {'compile'}
_CHOICES = {
    'amp_dtype': ('float16', 'bfloat16'),
    'clip_mode': ('norm', 'value', 'agc'),
    'mixup_mode': ('batch', 'pair', 'elem'),
}


def _read_yaml(path: Path, _seen: tuple = ()) -> Dict[str, Any]:
    """A config file with its ``_base_`` chain (paths relative to the file) merged in, base first."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f'config {path}: _base_ cycle through {[str(p) for p in _seen]}')
    if not path.is_file():
        raise ValueError(f'config file not found: {path}')
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f'config {path}: expected a mapping of key: value, got {type(data).__name__}')
    bases = data.pop('_base_', None) or []
    merged: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        for key, value in _read_yaml(path.parent / base, _seen + (path,)).items():
            _merge_value(merged, key, value)
    for key, value in data.items():
        _merge_value(merged, key, value)
    return merged


def _merge_value(cfg: Dict[str, Any], key: str, value: Any):
    if isinstance(value, dict) and isinstance(cfg.get(key), dict):
        cfg[key] = {**cfg[key], **value}
    else:
        cfg[key] = value


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the default's value (YAML gives '1e-3' as a string: parse it), or ValueError."""
    if value is None:
        if default is None or key in _NULLABLE:
            return None
        raise ValueError(f'config key {key!r} cannot be null')
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and key in _BOOL_OR_STR:
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false', '1', '0', 'yes', 'no', 'on', 'off'):
            return value.lower() in ('true', '1', 'yes', 'on')
        raise ValueError(f'config key {key!r} expects true/false; got {value!r}')
    if isinstance(default, int):
        if isinstance(value, bool):
            raise ValueError(f'config key {key!r} expects an integer; got {value!r}')
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f'config key {key!r} expects an integer; got {value!r}') from None
        if not number.is_integer():
            raise ValueError(f'config key {key!r} expects an integer; got {value!r}')
        return int(number)
    if isinstance(default, float):
        if isinstance(value, bool):
            raise ValueError(f'config key {key!r} expects a number; got {value!r}')
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f'config key {key!r} expects a number; got {value!r}') from None
    if isinstance(default, str):
        if isinstance(value, (list, dict)):
            raise ValueError(f'config key {key!r} expects a string; got {value!r}')
        return str(value)
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'config key {key!r} expects a list like {default!r}; got {value!r}')
        if default and all(isinstance(v, float) for v in default):
            try:
                return [float(v) for v in value]
            except (TypeError, ValueError):
                raise ValueError(f'config key {key!r} expects a list of numbers; got {value!r}') from None
        return list(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ValueError(f'config key {key!r} expects a mapping like {{name: value}}; got {value!r}')
        return dict(value)
    return value


def _unknown_key(key: str, known: Iterable[str]) -> ValueError:
    close = difflib.get_close_matches(key, list(known), n=3)
    hint = f' (did you mean {", ".join(close)}?)' if close else ''
    return ValueError(f'unknown config key {key!r}{hint}; the keys are those of {DEFAULT_CONFIG.relative_to(REPO)}')


def parse_override(item: str):
    """'key=value' -> (key, YAML-parsed value); 'a.b=value' sets entry b of the mapping a (e.g. model_kwargs)."""
    if '=' not in item:
        raise ValueError(f'override {item!r} must look like key=value')
    key, raw = item.split('=', 1)
    key = key.strip().replace('-', '_') if '.' not in key else key.strip()
    if not key:
        raise ValueError(f'override {item!r} has an empty key')
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def set_config_value(cfg: Dict[str, Any], defaults: Dict[str, Any], key: str, value: Any):
    if '.' in key:
        top, sub = key.split('.', 1)
        if top not in defaults:
            raise _unknown_key(top, defaults)
        if not isinstance(defaults[top], dict):
            raise ValueError(f'config key {top!r} is not a mapping; cannot set {key!r}')
        cfg[top] = {**(cfg.get(top) or {}), sub: value}
        return
    if key not in defaults:
        raise _unknown_key(key, defaults)
    cfg[key] = _coerce(key, value, defaults[key])


def load_config(path=None, overrides: Sequence = (), flags: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The default config, then ``path`` (with its ``_base_``), then ``flags`` (explicit command-line flags),
    then ``overrides`` ('key=value' strings or (key, value) pairs), each checked against the default's keys."""
    defaults = _read_yaml(DEFAULT_CONFIG)
    cfg = dict(defaults)
    if path:
        for key, value in _read_yaml(Path(path)).items():
            if key not in defaults:
                raise _unknown_key(key, defaults)
            if isinstance(defaults[key], dict):
                value = {**cfg[key], **_coerce(key, value, defaults[key])}
            set_config_value(cfg, defaults, key, value)
    for key, value in (flags or {}).items():
        if value is not None:
            set_config_value(cfg, defaults, key, value)
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        set_config_value(cfg, defaults, key, value)
    check_config(cfg)
    return cfg


def check_config(cfg: Dict[str, Any]):
    for key, choices in _CHOICES.items():
        if cfg[key] not in choices:
            raise ValueError(f'config {key}={cfg[key]!r}: expected one of {choices}')
    for key in ('epochs', 'batch_size', 'grad_accum', 'img_size'):
        if cfg[key] < 1:
            raise ValueError(f'config {key} must be >= 1; got {cfg[key]}')
    if cfg['val_batch_size'] is not None and cfg['val_batch_size'] < 1:
        raise ValueError(f"config val_batch_size must be >= 1 or null; got {cfg['val_batch_size']}")
    if cfg['warmup_prefix'] and cfg['warmup_epochs'] >= cfg['epochs']:
        raise ValueError(f"warmup_epochs ({cfg['warmup_epochs']}) must be < epochs ({cfg['epochs']}) with "
                         f"warmup_prefix (the cosine runs over the epochs after the warm-up)")
    if _mixup_active(cfg) and cfg['batch_size'] % 2:
        raise ValueError(f"mixup / cutmix need an even batch_size; got {cfg['batch_size']}")
    for key in ('workers', 'log_interval', 'checkpoint_every_steps', 'warmup_epochs'):
        if cfg[key] < 0:
            raise ValueError(f'config {key} must be >= 0; got {cfg[key]}')


def scaled_lrs(cfg: Dict[str, Any], world_size: int):
    """(global batch, (lr, warmup_lr, min_lr)) with linear scaling: x global batch / lr_base_batch (0: as given)."""
    global_batch = cfg['batch_size'] * world_size * cfg['grad_accum']
    scale = global_batch / cfg['lr_base_batch'] if cfg['lr_base_batch'] > 0 else 1.0
    return global_batch, tuple(cfg[k] * scale for k in ('lr', 'warmup_lr', 'min_lr'))


def _mixup_active(cfg) -> bool:
    return cfg['mixup'] > 0 or cfg['cutmix'] > 0 or cfg['cutmix_minmax'] is not None


# ----------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(obj: Dict[str, Any], path) -> Path:
    """torch.save to a temporary file beside ``path``, fsync, then os.replace: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def copy_atomic(src, dst) -> Path:
    dst = Path(dst)
    tmp = dst.with_name(f'.{dst.name}.tmp{os.getpid()}')
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


def load_checkpoint(path) -> Dict[str, Any]:
    return torch.load(path, map_location='cpu', weights_only=True)


def _get_rng_state() -> Dict[str, Any]:
    """Every RNG the training step touches, as tensors / plain values (``weights_only``-loadable)."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        'python': {'version': version, 'state': torch.tensor(mt, dtype=torch.int64), 'gauss_next': gauss},
        'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos), 'has_gauss': int(has_gauss),
                  'cached_gaussian': float(cached)},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Dict[str, Any]):
    py = state['python']
    random.setstate((py['version'], tuple(int(v) for v in py['state'].tolist()), py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(('MT19937', npy['keys'].numpy().astype(np.uint32), npy['pos'], npy['has_gauss'],
                         npy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


def _seed(*parts: int) -> int:
    """A 32-bit seed from integers (numpy SeedSequence: independent streams for (seed, epoch, rank, ...))."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CUDA generators too


# ----------------------------------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    distributed: bool
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Dist:
    """torchrun's env:// variables when present (NCCL on CUDA, gloo on CPU), else one process."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    if device_name == 'auto':
        device_name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device_name)
    if device.type == 'cuda':
        if device.index is None:
            device = torch.device('cuda', local)
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo', init_method='env://')
    return Dist(world > 1, rank, world, local, device)


def _all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (shown only on a terminal: ``disable=None``), or a do-nothing one without tqdm."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, disable=None, dynamic_ncols=True, leave=False)


class EpochSampler(DistributedSampler):
    """DistributedSampler (order from seed + epoch, shards padded to equal length; also for one process) that can
    start ``skip`` samples into the epoch: a mid-epoch resume sees exactly the samples the interrupted run had left."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self):
        return self.num_samples - self.skip


def _seed_worker(worker_id: int):
    # torch seeds python `random` and torch in each worker from the loader's base seed; numpy is ours to seed
    np.random.seed(torch.initial_seed() % 2 ** 32)


# ------------------------------------------------------------------------------------------------------------- data
def _split_dir(data: str, split: str) -> Path:
    root = Path(data)
    path = root / split
    if not path.is_dir():
        raise ValueError(f'{path} not found: --data must hold the ImageFolder splits train/ and val/ '
                         f'(one sub-folder per class); tools/make_synthetic.py imagefolder writes a small one')
    return path


def build_dataset(cfg, data: str, split: str, class_map: Optional[Dict[str, int]] = None):
    root = _split_dir(data, split)
    if class_map is not None:
        extra = sorted({p.name for p in root.iterdir() if p.is_dir()} - set(class_map))
        if extra:
            raise ValueError(f'{root} has classes that train/ lacks: {extra[:5]}')
    ds = create_dataset('', root=str(root), search_split=False, is_training=split == 'train', class_map=class_map)
    if len(ds) == 0:
        raise ValueError(f'{root} holds no images')
    if split == 'train':
        ds.transform = create_transform(
            cfg['img_size'], is_training=True, scale=tuple(cfg['scale']), ratio=tuple(cfg['ratio']),
            hflip=cfg['hflip'], color_jitter=cfg['color_jitter'], auto_augment=cfg['auto_augment'],
            interpolation=cfg['interpolation'], mean=tuple(cfg['mean']), std=tuple(cfg['std']),
            re_prob=cfg['reprob'], re_mode=cfg['remode'], re_count=cfg['recount'])
    else:
        ds.transform = create_transform(
            cfg['img_size'], is_training=False, interpolation=cfg['interpolation'], mean=tuple(cfg['mean']),
            std=tuple(cfg['std']), crop_pct=cfg['crop_pct'])
    return ds


def build_val_loader(cfg, ds, d: Dist) -> DataLoader:
    # each rank evaluates every world_size-th image, nothing padded: counts are summed over ranks
    shard = Subset(ds, list(range(d.rank, len(ds), d.world_size))) if d.distributed else ds
    return DataLoader(shard, batch_size=cfg['val_batch_size'] or cfg['batch_size'], shuffle=False,
                      num_workers=cfg['workers'], pin_memory=cfg['pin_memory'] and d.device.type == 'cuda',
                      worker_init_fn=_seed_worker)


# ------------------------------------------------------------------------------------------------------------ model
def build_model(cfg, num_classes: int, device: torch.device) -> nn.Module:
    if not cfg['model']:
        raise ValueError('no model: set `model` in the config or pass --model NAME')
    kwargs = dict(cfg['model_kwargs'] or {})
    kwargs.setdefault('drop_rate', cfg['drop_rate'])
    if cfg['drop_path'] is not None:
        kwargs.setdefault('drop_path_rate', cfg['drop_path'])
    model = timm.create_model(cfg['model'], pretrained=cfg['pretrained'], num_classes=num_classes, **kwargs)
    if cfg['grad_checkpointing']:
        model.set_grad_checkpointing(True)
    model.to(device)
    if cfg['channels_last']:
        model.to(memory_format=torch.channels_last)
    return model


def _compile(model: nn.Module, cfg) -> nn.Module:
    if not cfg['compile']:
        return model
    mode = None if cfg['compile'] is True else cfg['compile']
    return torch.compile(model, mode=mode)


def _autocast(cfg, device: torch.device, log=print):
    """(context factory, amp dtype or None). fp16 autocast is CUDA-only here; CPU autocasts with bfloat16 only."""
    if not cfg['amp']:
        return nullcontext, None
    dtype = torch.bfloat16 if cfg['amp_dtype'] == 'bfloat16' else torch.float16
    if device.type == 'cpu' and dtype == torch.float16:
        log('note: amp with float16 is CUDA-only; running float32 on CPU (set amp_dtype=bfloat16 for CPU autocast)')
        return nullcontext, None
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), dtype


# ------------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, d: Dist, autocast, channels_last: bool) -> Dict[str, float]:
    """Loss, top-1 and top-5 (%) over the whole validation split, summed over ranks."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=d.device)  # loss sum, top-1 hits, top-5 hits, images
    for images, target in loader:
        images = images.to(d.device, non_blocking=True)
        target = target.to(d.device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast():
            output = model(images)
        output = output.float()
        n = target.shape[0]
        acc1, acc5 = accuracy(output, target, topk=(1, min(5, output.shape[1])))
        totals += torch.stack([F.cross_entropy(output, target, reduction='sum').double(),
                               (acc1.double() * n / 100).round(), (acc5.double() * n / 100).round(),
                               torch.tensor(float(n), dtype=torch.float64, device=d.device)])
    _all_reduce_sum(totals, d)
    model.train(was_training)
    loss, hit1, hit5, count = totals.tolist()
    count = max(count, 1.0)
    return {'loss': loss / count, 'top1': 100.0 * hit1 / count, 'top5': 100.0 * hit5 / count, 'count': int(count)}


# --------------------------------------------------------------------------------------------------------- training
class Trainer:
    def __init__(self, cfg: Dict[str, Any], args, d: Dist):
        self.cfg, self.args, self.d = cfg, args, d
        self.out = Path(args.output)
        self.log = print if d.main else (lambda *a, **k: None)

        train_ds = build_dataset(cfg, args.data, 'train')
        self.class_to_idx = dict(train_ds.reader.class_to_idx)
        val_ds = build_dataset(cfg, args.data, 'val', class_map=self.class_to_idx)
        self.num_classes = cfg['num_classes'] or len(self.class_to_idx)

        self.sampler = EpochSampler(train_ds, d.world_size, d.rank, cfg['seed'])
        self.loader_generator = torch.Generator()
        self.train_loader = DataLoader(
            train_ds, batch_size=cfg['batch_size'], sampler=self.sampler, drop_last=True,
            num_workers=cfg['workers'], pin_memory=cfg['pin_memory'] and d.device.type == 'cuda',
            worker_init_fn=_seed_worker, generator=self.loader_generator)
        self.val_loader = build_val_loader(cfg, val_ds, d)
        batches = self.sampler.num_samples // cfg['batch_size']
        self.updates_per_epoch = batches // cfg['grad_accum']
        self.micro_per_epoch = self.updates_per_epoch * cfg['grad_accum']
        if self.updates_per_epoch < 1:
            raise ValueError(f"{len(train_ds)} training images over {d.world_size} process(es) make no full "
                             f"batch of batch_size {cfg['batch_size']} x grad_accum {cfg['grad_accum']}")

        seed_all(_seed(cfg['seed']))  # same initial weights on every rank (DDP also broadcasts rank 0's)
        self.model = build_model(cfg, self.num_classes, d.device)
        self.log(f"model {cfg['model']}: {sum(p.numel() for p in self.model.parameters()) / 1e6:.2f}M params, "
                 f"{self.num_classes} classes, {len(train_ds)} train / {len(val_ds)} val images, "
                 f"{d.world_size} process(es) on {d.device}")

        global_batch, (self.lr, warmup_lr, min_lr) = scaled_lrs(cfg, d.world_size)
        info = get_optimizer_info(cfg['opt'])
        opt_kwargs = {}
        if info.has_eps and cfg['opt_eps'] is not None:
            opt_kwargs['eps'] = cfg['opt_eps']
        if info.has_betas and cfg['opt_betas'] is not None:
            opt_kwargs['betas'] = tuple(cfg['opt_betas'])
        if info.has_momentum:
            opt_kwargs['momentum'] = cfg['momentum']
        self.optimizer = create_optimizer_v2(self.model, opt=cfg['opt'], lr=self.lr,
                                             weight_decay=cfg['weight_decay'], **opt_kwargs)
        # Official VMamba / Swin (utils/lr_scheduler.py): per-iteration schedule, warm-up prefix, cosine over the
        # remaining iterations ending at min_lr. create_scheduler_v2 adds the warm-up to num_epochs: subtract it.
        sched_epochs = cfg['epochs'] - cfg['warmup_epochs'] if cfg['warmup_prefix'] else cfg['epochs']
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched=cfg['sched'], num_epochs=sched_epochs, warmup_epochs=cfg['warmup_epochs'],
            warmup_lr=warmup_lr, min_lr=min_lr, warmup_prefix=cfg['warmup_prefix'], step_on_epochs=False,
            updates_per_epoch=self.updates_per_epoch)
        self.log(f'global batch {global_batch}: lr {self.lr:.3g} (warm-up from {warmup_lr:.3g}, min {min_lr:.3g}), '
                 f'{self.updates_per_epoch} steps per epoch')

        self.autocast, amp_dtype = _autocast(cfg, d.device, self.log)
        self.scaler = NativeScaler(device=d.device.type) if amp_dtype == torch.float16 else None
        self.ema = ModelEmaV3(self.model, decay=cfg['model_ema_decay'],
                              use_warmup=cfg['model_ema_warmup']) if cfg['model_ema'] else None

        if _mixup_active(cfg):
            self.mixup = Mixup(mixup_alpha=cfg['mixup'], cutmix_alpha=cfg['cutmix'],
                               cutmix_minmax=cfg['cutmix_minmax'], prob=cfg['mixup_prob'],
                               switch_prob=cfg['mixup_switch_prob'], mode=cfg['mixup_mode'],
                               label_smoothing=cfg['smoothing'], num_classes=self.num_classes)
            self.criterion = SoftTargetCrossEntropy()
        else:
            self.mixup = None
            self.criterion = (LabelSmoothingCrossEntropy(cfg['smoothing']) if cfg['smoothing'] > 0
                              else nn.CrossEntropyLoss())

        self.start_epoch, self.start_micro, self.global_step = 0, 0, 0
        self.best_top1, self.best_epoch = -1.0, -1
        self.resume_rank_state = None
        if args.resume:
            self._resume(self._resume_path())

        ddp_model = self.model
        if d.distributed:
            ddp_model = DistributedDataParallel(
                self.model, device_ids=[d.device.index] if d.device.type == 'cuda' else None)
        self.train_model = _compile(ddp_model, cfg)
        self.eval_model = _compile(self.model, cfg) if cfg['compile'] else self.model
        self.eval_ema = (_compile(self.ema.module, cfg) if cfg['compile'] else self.ema.module) if self.ema else None

        self.tb = None
        if cfg['tensorboard'] and d.main:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.out / 'tb'))
            except ImportError:
                self.log('note: tensorboard is not installed; TensorBoard logging is off')

    # -------------------------------------------------------------------------------------------- checkpoint I/O
    def _resume_path(self) -> Path:
        path = Path(self.out / 'last.pth' if self.args.resume == 'last' else self.args.resume)
        if not path.is_file():
            raise ValueError(f'--resume: checkpoint {path} not found')
        return path

    def _resume(self, path: Path):
        ckpt = load_checkpoint(path)
        if ckpt.get('format') != CHECKPOINT_FORMAT:
            raise ValueError(f'{path} is not a tools/train.py checkpoint (format {ckpt.get("format")!r}); '
                             f'to start from other weights use --set pretrained=true or --eval-only')
        old = ckpt.get('config', {})
        changed = sorted(k for k in self.cfg if k in old and old[k] != self.cfg[k])
        if changed:
            self.log('resume: config differs from the checkpoint in ' +
                     ', '.join(f'{k}: {old[k]!r} -> {self.cfg[k]!r}' for k in changed))
        self.model.load_state_dict(ckpt['model'])
        if self.ema is not None:
            if 'model_ema' in ckpt:
                self.ema.module.load_state_dict(ckpt['model_ema'])
            else:
                self.log('resume: checkpoint has no EMA weights; EMA restarts from the model')
                self.ema.set(self.model)
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        if self.scaler is not None and ckpt.get('scaler'):
            self.scaler.load_state_dict(ckpt['scaler'])
        self.start_epoch = int(ckpt['epoch'])
        self.start_micro = int(ckpt['step_in_epoch'])
        self.global_step = int(ckpt['global_step'])
        self.best_top1, self.best_epoch = float(ckpt['best_top1']), int(ckpt['best_epoch'])
        if self.start_micro:
            if ckpt['micro_steps_per_epoch'] != self.micro_per_epoch or ckpt['world_size'] != self.d.world_size:
                raise ValueError(f'{path} was written mid-epoch by {ckpt["world_size"]} process(es) with '
                                 f'{ckpt["micro_steps_per_epoch"]} steps per epoch; resuming it needs the same '
                                 f'(now {self.d.world_size} and {self.micro_per_epoch})')
            self.resume_rank_state = ckpt['ranks'][self.d.rank]
        elif ckpt['updates_per_epoch'] != self.updates_per_epoch:
            self.log(f"resume: steps per epoch changed ({ckpt['updates_per_epoch']} -> {self.updates_per_epoch}); "
                     f"the lr schedule continues from step {self.global_step}")
        self.scheduler.step_update(num_updates=self.global_step)
        self.log(f'resumed from {path}: epoch {self.start_epoch}, step {self.start_micro} in epoch, '
                 f'{self.global_step} optimizer steps')

    def _checkpoint(self, epoch: int, step_in_epoch: int, rank_state: Dict[str, Any],
                    metrics: Optional[Dict[str, Any]] = None) -> Optional[Path]:
        """Collective (all ranks gather their RNG state); rank 0 writes OUT/last.pth."""
        ranks = [None] * self.d.world_size
        if self.d.distributed:
            dist.all_gather_object(ranks, rank_state)
        else:
            ranks = [rank_state]
        if not self.d.main:
            return None
        ckpt = {
            'format': CHECKPOINT_FORMAT,
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'scaler': self.scaler.state_dict() if self.scaler is not None else None,
            'epoch': epoch, 'step_in_epoch': step_in_epoch, 'global_step': self.global_step,
            'updates_per_epoch': self.updates_per_epoch, 'micro_steps_per_epoch': self.micro_per_epoch,
            'world_size': self.d.world_size, 'ranks': ranks,
            'best_top1': self.best_top1, 'best_epoch': self.best_epoch, 'metrics': metrics or {},
            'model_name': self.cfg['model'], 'num_classes': self.num_classes, 'class_to_idx': self.class_to_idx,
            'config': self.cfg,
        }
        if self.ema is not None:
            ckpt['model_ema'] = self.ema.module.state_dict()
        return save_checkpoint(ckpt, self.out / 'last.pth')

    # ------------------------------------------------------------------------------------------------ the loop
    def train_one_epoch(self, epoch: int, start_micro: int, loss_sum: float, loss_count: int) -> float:
        cfg, d = self.cfg, self.d
        accum = cfg['grad_accum']
        self.sampler.set_epoch(epoch)
        self.sampler.skip = start_micro * cfg['batch_size']
        self.loader_generator.manual_seed(_seed(cfg['seed'], epoch, d.rank, 1))
        self.train_model.train()
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        running = torch.zeros(2, dtype=torch.float64, device=d.device)
        running += torch.tensor([loss_sum, loss_count], dtype=torch.float64, device=d.device)
        t0, seen = time.time(), 0
        micro = start_micro
        bar = progress_bar(self.updates_per_epoch - start_micro // accum, f"epoch {epoch + 1}/{cfg['epochs']}",
                           cfg['progress_bar'] and d.main)
        for images, target in self.train_loader:
            if micro >= self.micro_per_epoch:
                break
            images = images.to(d.device, non_blocking=True)
            target = target.to(d.device, non_blocking=True)
            if self.mixup is not None:
                images, target = self.mixup(images, target)
            if cfg['channels_last']:
                images = images.contiguous(memory_format=torch.channels_last)
            update = (micro + 1) % accum == 0
            no_sync = self.train_model.no_sync if d.distributed and not update and hasattr(
                self.train_model, 'no_sync') else nullcontext
            with no_sync():
                with self.autocast():
                    loss = self.criterion(self.train_model(images), target)
                running += torch.stack([loss.detach().double(), torch.ones((), dtype=torch.float64,
                                                                           device=d.device)])
                loss = loss / accum
                if self.scaler is not None:
                    self.scaler(loss, self.optimizer, clip_grad=cfg['clip_grad'], clip_mode=cfg['clip_mode'],
                                parameters=parameters, need_update=update)
                else:
                    loss.backward()
                    if update:
                        if cfg['clip_grad'] is not None:
                            dispatch_clip_grad(parameters, cfg['clip_grad'], mode=cfg['clip_mode'])
                        self.optimizer.step()
            micro += 1
            seen += images.shape[0]
            if not update:
                continue
            self.optimizer.zero_grad(set_to_none=True)
            self.global_step += 1
            if self.ema is not None:
                self.ema.update(self.model, step=self.global_step)
            self.scheduler.step_update(num_updates=self.global_step)
            step = micro // accum
            bar.update(1)
            bar.set_postfix_str(f"loss {running[0].item() / max(running[1].item(), 1):.4f} "
                                f"lr {self.optimizer.param_groups[0]['lr']:.2e}")
            if cfg['log_interval'] and (step % cfg['log_interval'] == 0 or step == self.updates_per_epoch):
                dt = time.time() - t0
                self.log(f"epoch {epoch + 1}/{cfg['epochs']} step {step}/{self.updates_per_epoch} "
                         f"loss {running[0].item() / max(running[1].item(), 1):.4f} "
                         f"lr {self.optimizer.param_groups[0]['lr']:.3e} "
                         f"{seen * d.world_size / max(dt, 1e-9):.1f} img/s", flush=True)
            every = cfg['checkpoint_every_steps']
            if every and self.global_step % every == 0 and micro < self.micro_per_epoch:
                state = {'rng': _get_rng_state(), 'loss_sum': running[0].item(), 'loss_count': int(running[1].item())}
                self._checkpoint(epoch, micro, state)
        bar.close()
        _all_reduce_sum(running, d)
        return running[0].item() / max(running[1].item(), 1.0)

    def fit(self) -> Dict[str, Any]:
        cfg, d = self.cfg, self.d
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / 'config.yaml').write_text(yaml.safe_dump(self.cfg, sort_keys=False))
            self._trim_csv(self.start_epoch)
        metrics: Dict[str, Any] = {}
        for epoch in range(self.start_epoch, cfg['epochs']):
            t0 = time.time()
            seed_all(_seed(cfg['seed'], epoch, d.rank))
            start_micro, loss_sum, loss_count = 0, 0.0, 0
            if epoch == self.start_epoch and self.start_micro:
                start_micro = self.start_micro
                state = self.resume_rank_state
                _set_rng_state(state['rng'])
                loss_sum, loss_count = state['loss_sum'], state['loss_count']
            train_loss = self.train_one_epoch(epoch, start_micro, loss_sum, loss_count)
            val = evaluate(self.eval_model, self.val_loader, d, self.autocast, cfg['channels_last'])
            ema_val = (evaluate(self.eval_ema, self.val_loader, d, self.autocast, cfg['channels_last'])
                       if self.ema is not None else None)
            improved = val['top1'] > self.best_top1
            if improved:
                self.best_top1, self.best_epoch = val['top1'], epoch + 1
            metrics = {
                'epoch': epoch + 1, 'global_step': self.global_step, 'lr': self.optimizer.param_groups[0]['lr'],
                'train_loss': train_loss, 'val_loss': val['loss'], 'val_top1': val['top1'], 'val_top5': val['top5'],
                'ema_val_loss': ema_val['loss'] if ema_val else None,
                'ema_val_top1': ema_val['top1'] if ema_val else None,
                'ema_val_top5': ema_val['top5'] if ema_val else None,
                'epoch_time_s': time.time() - t0,
            }
            path = self._checkpoint(epoch + 1, 0, {'rng': _get_rng_state(), 'loss_sum': 0.0, 'loss_count': 0},
                                    metrics)
            if d.main:
                if improved:
                    copy_atomic(path, self.out / 'best.pth')
                if cfg['save_epoch_checkpoints']:
                    copy_atomic(path, self.out / f'epoch_{epoch + 1:04d}.pth')
                self._append_csv(metrics)
                if self.tb is not None:
                    for key, value in metrics.items():
                        if key != 'epoch' and value is not None:
                            self.tb.add_scalar(key, value, epoch + 1)
                    self.tb.flush()
            ema_text = f" | EMA top-1 {ema_val['top1']:.2f} top-5 {ema_val['top5']:.2f}" if ema_val else ''
            self.log(f"epoch {epoch + 1}/{cfg['epochs']} done in {metrics['epoch_time_s']:.1f}s: train loss "
                     f"{train_loss:.4f} | val loss {val['loss']:.4f} top-1 {val['top1']:.2f} top-5 {val['top5']:.2f}"
                     f"{ema_text} | best top-1 {self.best_top1:.2f} (epoch {self.best_epoch})", flush=True)
        if self.tb is not None:
            self.tb.close()
        metrics['best_top1'] = self.best_top1
        metrics['best_epoch'] = self.best_epoch
        return metrics

    def _trim_csv(self, keep_epochs: int):
        """A resumed run rewrites the epochs after its checkpoint: drop their old rows."""
        path = self.out / 'log.csv'
        if not path.exists():
            return
        with open(path, newline='') as f:
            rows = [r for r in csv.DictReader(f) if int(r['epoch']) <= keep_epochs]
        with open(path, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def _append_csv(self, metrics: Dict[str, Any]):
        path = self.out / 'log.csv'
        new = not path.exists()
        with open(path, 'a', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: ('' if metrics[k] is None else
                                 f'{metrics[k]:.6g}' if isinstance(metrics[k], float) else metrics[k])
                             for k in CSV_FIELDS})


def run_eval(cfg: Dict[str, Any], args, d: Dist) -> Dict[str, Any]:
    """--eval-only: top-1 / top-5 of --checkpoint (this tool's checkpoints, or any file the model's timm
    pretrained filter accepts, e.g. an official release) on DATA/val."""
    log = print if d.main else (lambda *a, **k: None)
    if not args.checkpoint:
        raise ValueError('--eval-only needs --checkpoint PATH')
    path = Path(args.checkpoint)
    if not path.is_file():
        raise ValueError(f'--checkpoint {path} not found')
    try:
        ckpt = load_checkpoint(path)
    except Exception:  # not weights_only-loadable: leave it to the model's own loader
        ckpt = None
    ours = isinstance(ckpt, dict) and ckpt.get('format') == CHECKPOINT_FORMAT
    class_map = ckpt.get('class_to_idx') if ours else None
    if class_map is None and (Path(args.data) / 'train').is_dir():
        class_map = dict(create_dataset('', root=str(_split_dir(args.data, 'train')), search_split=False)
                         .reader.class_to_idx)
    val_ds = build_dataset(cfg, args.data, 'val', class_map=class_map)
    num_classes = cfg['num_classes'] or (ckpt['num_classes'] if ours else len(val_ds.reader.class_to_idx))
    if ours:
        key = 'model_ema' if args.use_ema else 'model'
        if key not in ckpt:
            raise ValueError(f'{path} has no {key!r} weights (trained without EMA?)')
        model = build_model(dict(cfg, pretrained=False), num_classes, d.device)
        model.load_state_dict(ckpt[key])
    else:
        if args.use_ema:
            log('note: --use-ema applies to tools/train.py checkpoints; the model loader picks the weights')
        eval_cfg = dict(cfg, pretrained=True,
                        model_kwargs={**cfg['model_kwargs'], 'pretrained_cfg_overlay': dict(file=str(path))})
        model = build_model(eval_cfg, num_classes, d.device)
    autocast, _ = _autocast(cfg, d.device, log)
    metrics = evaluate(_compile(model, cfg), build_val_loader(cfg, val_ds, d), d, autocast, cfg['channels_last'])
    metrics.update(checkpoint=str(path), weights='model_ema' if (ours and args.use_ema) else 'model',
                   model=cfg['model'])
    log(f"eval {cfg['model']} {path} ({metrics['weights']}): top-1 {metrics['top1']:.2f} "
        f"top-5 {metrics['top5']:.2f} loss {metrics['loss']:.4f} on {metrics['count']} images")
    log(json.dumps(metrics))
    if d.main and args.output:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        (Path(args.output) / 'eval.json').write_text(json.dumps(metrics, indent=1) + '\n')
    return metrics


# ------------------------------------------------------------------------------------------------------------ CLI
# explicit flags and the config key each one sets (applied after --config, before --set)
FLAG_KEYS = {'model': 'model', 'epochs': 'epochs', 'batch_size': 'batch_size', 'lr': 'lr', 'workers': 'workers',
             'img_size': 'img_size', 'seed': 'seed', 'device': 'device', 'amp': 'amp',
             'model_ema': 'model_ema', 'compile': 'compile', 'channels_last': 'channels_last',
             'grad_checkpointing': 'grad_checkpointing', 'checkpoint_every_steps': 'checkpoint_every_steps'}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description='ImageNet-style classification training (timm + vmamba_zoo).',
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='Config keys and defaults: configs/cls/_base_/default.yaml')
    p.add_argument('--config', help='YAML config (configs/cls/<family>/<variant>.yaml); default: the shared one')
    p.add_argument('--data', help='ImageFolder root with train/ and val/')
    p.add_argument('--output', help='run folder: last.pth, best.pth, log.csv, config.yaml')
    p.add_argument('--set', nargs='+', action='append', default=[], metavar='KEY=VALUE',
                   help='override config values (YAML), e.g. --set lr=1.0e-3 mixup=0 model_kwargs.scan=zigzag')
    p.add_argument('--resume', nargs='?', const='last', default=None, metavar='PATH',
                   help='continue a run: OUTPUT/last.pth, or PATH')
    p.add_argument('--eval-only', action='store_true', help='evaluate --checkpoint on DATA/val and exit')
    p.add_argument('--checkpoint', help='weights for --eval-only')
    p.add_argument('--use-ema', action='store_true', help='--eval-only: evaluate the EMA weights')
    p.add_argument('--print-config', action='store_true', help='print the resolved config and exit')
    g = p.add_argument_group('shortcuts for config keys')
    g.add_argument('--model')
    g.add_argument('--epochs', type=int)
    g.add_argument('--batch-size', type=int, help='per process')
    g.add_argument('--lr', type=float, help='per lr_base_batch images')
    g.add_argument('--workers', type=int)
    g.add_argument('--img-size', type=int)
    g.add_argument('--seed', type=int)
    g.add_argument('--device', help='auto, cpu, cuda')
    g.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None)
    g.add_argument('--model-ema', action=argparse.BooleanOptionalAction, default=None)
    g.add_argument('--compile', nargs='?', const=True, default=None, help='torch.compile (optionally a mode)')
    g.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=None)
    g.add_argument('--grad-checkpointing', action=argparse.BooleanOptionalAction, default=None)
    g.add_argument('--checkpoint-every-steps', type=int)
    return p


def config_from_args(args) -> Dict[str, Any]:
    flags = {key: getattr(args, attr) for attr, key in FLAG_KEYS.items()}
    overrides = [item for group in args.set for item in group]
    return load_config(args.config, overrides=overrides, flags=flags)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False), end='')
        return cfg
    if not args.data:
        raise ValueError('--data DIR (ImageFolder with train/ and val/) is required')
    if not args.eval_only and not args.output:
        raise ValueError('--output DIR is required for training')
    if cfg['deterministic']:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    d = init_distributed(cfg['device'])
    try:
        if args.eval_only:
            return run_eval(cfg, args, d)
        return Trainer(cfg, args, d).fit()
    finally:
        if d.distributed:
            dist.destroy_process_group()


if __name__ == '__main__':
    main()
