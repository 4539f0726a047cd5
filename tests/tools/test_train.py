"""tools/train.py on CPU: a tiny zoo model learns a synthetic ImageFolder set, a real training process killed with
SIGKILL mid-epoch resumes exactly, two-process DDP (gloo) runs, --eval-only, and every config under configs/cls/.

The model is ``vmamba_tiny`` shrunk through ``model_kwargs`` (one block per stage, 16 channels: 0.34M params, the
real SS2D / selective-scan path) on 32x32 images; subprocesses run with one thread each, as torchrun does.
"""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import timm
import torch
import yaml

import vmamba_zoo
from .test_convert import ROOT, _load_tool

TINY = ['--model', 'vmamba_tiny', '--img-size', '32', '--workers', '0',
        '--set', 'model_kwargs.depths=[1,1,1,1]', 'model_kwargs.dims=16', 'crop_pct=1.0', 'log_interval=0',
        'progress_bar=false']
# the paper recipe's moving parts, scaled down: every RNG consumer (RandAugment, random erasing, mixup / cutmix,
# drop path) and every piece of state (AdamW, warm-up + cosine, EMA) takes part in the resume check
RECIPE = ['--set', 'mixup=0.8', 'cutmix=1.0', 'smoothing=0.1', 'auto_augment=rand-m9-mstd0.5-inc1', 'reprob=0.25',
          'drop_path=0.1', 'model_ema=true', 'model_ema_decay=0.9', 'lr=1.0e-3', 'lr_base_batch=0',
          'warmup_epochs=1', 'warmup_lr=1.0e-5', 'min_lr=1.0e-5']


@pytest.fixture(scope='module')
def train_tool():
    return _load_tool('train')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic')
    _load_tool('make_synthetic').write_imagefolder(out, num_classes=4, train_per_class=32, val_per_class=16,
                                                    size=32, seed=0)
    return out


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    env.pop('WORLD_SIZE', None)
    return env


def _train_cmd(data, out, *extra):
    return [sys.executable, str(ROOT / 'tools' / 'train.py'), '--data', str(data), '--output', str(out), *TINY,
            *extra]


def _run(cmd):
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f'{cmd}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}'
    return run


def _read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_tiny_model_learns_synthetic_set_and_eval_only_agrees(train_tool, data, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / 'run'
    metrics = train_tool.main(['--data', str(data), '--output', str(out), *TINY, '--epochs', '3',
                               '--batch-size', '16', '--set', 'lr=2.0e-3', 'lr_base_batch=0', 'warmup_epochs=0',
                               'mixup=0', 'cutmix=0', 'auto_augment=null', 'reprob=0', 'model_ema=true',
                               'model_ema_decay=0.9'])
    assert metrics['val_top1'] >= 60.0, metrics  # 4 classes: chance is 25%
    rows = _read_csv(out / 'log.csv')
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    assert {'val_top1', 'val_top5', 'ema_val_top1', 'lr'} <= set(rows[0])
    ckpt = _load(out / 'best.pth')  # weights_only loadable: tensors and plain containers only
    assert ckpt['epoch'] == metrics['best_epoch'] and ckpt['global_step'] == 8 * ckpt['epoch']
    assert yaml.safe_load((out / 'config.yaml').read_text())['model_kwargs'] == {'depths': [1, 1, 1, 1], 'dims': 16}

    evaluated = train_tool.main(['--data', str(data), '--output', str(tmp_path / 'eval'), *TINY, '--eval-only',
                                 '--checkpoint', str(out / 'best.pth')])
    assert evaluated['top1'] == pytest.approx(metrics['best_top1']) and evaluated['count'] == 64
    ema = train_tool.main(['--data', str(data), *TINY, '--eval-only', '--checkpoint', str(out / 'last.pth'),
                           '--use-ema'])
    assert ema['top1'] == pytest.approx(metrics['ema_val_top1'])

    # the checkpoint also loads through timm's pretrained path: timm's load_state_dict prefers 'model_ema' when a
    # file has it (else 'model'); the overlay's num_classes tells timm the file's head fits, else timm drops it
    model = timm.create_model('vmamba_tiny', pretrained=True, num_classes=4, depths=[1, 1, 1, 1], dims=16,
                              pretrained_cfg_overlay=dict(file=str(out / 'best.pth'), num_classes=4))
    torch.testing.assert_close(model.state_dict(), ckpt['model_ema'])


def test_killed_mid_epoch_then_resumed_matches_uninterrupted_run(data, tmp_path):
    """SIGKILL a real training process right after its first mid-epoch checkpoint; --resume loses only the steps
    after the last checkpoint and (workers 0, CPU) ends bit for bit where an uninterrupted run ends."""
    common = ['--epochs', '2', '--batch-size', '8', '--checkpoint-every-steps', '5', *RECIPE]  # 16 steps / epoch
    ref = tmp_path / 'uninterrupted'
    _run(_train_cmd(data, ref, *common))

    out = tmp_path / 'killed'
    proc = subprocess.Popen(_train_cmd(data, out, *common), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (out / 'last.pth').exists() and _load(out / 'last.pth')['step_in_epoch'] > 0:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f'training ended before a mid-epoch checkpoint: {proc.stderr.read()[-2000:]}'
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = _load(out / 'last.pth')  # the newest checkpoint the killed run finished writing
    assert 0 < last['step_in_epoch'] < 16 and last['epoch'] in (0, 1) and last['global_step'] % 5 == 0
    assert last['global_step'] == 16 * last['epoch'] + last['step_in_epoch']

    resumed = _run(_train_cmd(data, out, *common, '--resume'))
    assert (f"resumed from {out / 'last.pth'}: epoch {last['epoch']}, step {last['step_in_epoch']} in epoch, "
            f"{last['global_step']} optimizer steps") in resumed.stdout

    a, b = _load(ref / 'last.pth'), _load(out / 'last.pth')
    assert a['global_step'] == b['global_step'] == 32 and a['epoch'] == b['epoch'] == 2
    for key in ('model', 'model_ema'):
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)
    torch.testing.assert_close(b['optimizer']['state'], a['optimizer']['state'], rtol=0, atol=0)
    assert b['scheduler'] == a['scheduler']
    ref_rows, rows = _read_csv(ref / 'log.csv'), _read_csv(out / 'log.csv')
    assert [r['epoch'] for r in rows] == ['1', '2']
    for key in ('train_loss', 'val_loss', 'val_top1', 'ema_val_top1', 'lr'):
        assert [r[key] for r in rows] == [r[key] for r in ref_rows], key


def test_ddp_two_processes_gloo(data, tmp_path):
    """torchrun, 2 CPU processes (gloo), with the runtime options on: bf16 autocast, channels-last, gradient
    checkpointing, EMA, a mid-epoch checkpoint gathering both ranks' RNG states."""
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           *_train_cmd(data, out, '--epochs', '1', '--batch-size', '8', '--checkpoint-every-steps', '3',
                       '--amp', '--channels-last', '--grad-checkpointing', '--model-ema',
                       '--set', 'warmup_epochs=0', 'amp_dtype=bfloat16')[1:]]
    run = _run(cmd)
    assert '2 process(es) on cpu' in run.stdout and 'global batch 16' in run.stdout and 'EMA top-1' in run.stdout
    ckpt = _load(out / 'last.pth')
    assert ckpt['world_size'] == 2 and len(ckpt['ranks']) == 2 and ckpt['global_step'] == 8
    assert ckpt['config']['amp_dtype'] == 'bfloat16' and ckpt['config']['grad_checkpointing'] and 'model_ema' in ckpt
    assert len(_read_csv(out / 'log.csv')) == 1


def test_randaugment_posterize_to_zero_bits_gives_black_image(train_tool):
    """The paper recipe's RandAugment (inc1) asks for 0 bits at magnitude 10; Pillow 13 raises, the tool keeps timm's
    black image."""
    from PIL import Image
    from timm.data.auto_augment import AugmentOp
    img = Image.new('RGB', (8, 8), (200, 120, 40))
    out = AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=10)(img)
    assert out.size == img.size and out.getextrema() == ((0, 0), (0, 0), (0, 0))
    assert AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=5)(img).getextrema() != ((0, 0),) * 3


def test_config_errors_are_clear(train_tool):
    with pytest.raises(ValueError, match=r"unknown config key 'weight_decy' \(did you mean weight_decay"):
        train_tool.load_config(None, overrides=['weight_decy=0.1'])
    with pytest.raises(ValueError, match="expects a number"):
        train_tool.load_config(None, overrides=['lr=fast'])
    with pytest.raises(ValueError, match='even batch_size'):
        train_tool.load_config(None, overrides=['batch_size=7'])
    cfg = train_tool.load_config(None, overrides=['lr=1e-3', 'model_kwargs.scan=zigzag'])
    assert cfg['lr'] == 1e-3 and cfg['model_kwargs'] == {'scan': 'zigzag'}


CONFIGS = sorted((ROOT / 'configs' / 'cls').glob('*/*.yaml'))


def test_every_registered_model_has_a_config():
    named = {yaml.safe_load(p.read_text()).get('model') for p in CONFIGS if p.parent.name != '_base_'}
    missing = sorted(set(vmamba_zoo.list_models()) - named)
    assert not missing, f'no configs/cls/<family>/<variant>.yaml for {missing}'


@pytest.mark.parametrize('path', [p for p in CONFIGS if p.parent.name != '_base_'],
                         ids=lambda p: f'{p.parent.name}/{p.stem}')
def test_config_loads_and_names_a_registered_model(train_tool, path):
    cfg = train_tool.load_config(path)
    assert cfg['model'] in vmamba_zoo.list_models() and timm.is_model(cfg['model'])
    assert path.stem == cfg['model'], 'configs are named after the model they train'
    header = path.read_text().split('\n_base_')[0]
    assert header.startswith('#') and '/' in header, 'the header comment cites the official recipe (repo/file)'
    assert cfg['epochs'] >= 1 and cfg['opt'] and cfg['lr'] > 0


# (config, processes of the paper run, its global batch, its lr): the configs reproduce the official runs' numbers
PAPER_RUNS = [
    ('vmamba/vmamba_tiny', 8, 1024, 1e-3),            # README: 8 GPUs x 128; BASE_LR 5e-4 per 512
    ('vim/vim_tiny_patch16_224', 8, 1024, 1e-3),      # pt-vim-t.sh
    ('vim/vim_small_patch16_224', 8, 512, 1e-3),      # pt-vim-s.sh
    ('vim/vim_tiny_patch16_stride8_224', 8, 1024, 1e-5),  # ft-vim-t.sh: 5e-6 per 512
    ('plainmamba/plainmamba_l1', 8, 2048, 2e-3),      # 5e-4 * 256 * 8 / 512
    ('plainmamba/plainmamba_l3', 4, 1024, 1e-3),      # world_size = 4
    ('efficientvmamba/efficientvmamba_base', 16, 1024, 2e-3),  # log: batch_size 64, world_size 16, lr 0.002
    ('mambaout/mambaout_tiny', 8, 4096, 4e-3),        # ALL_BATCH_SIZE 4096 with grad accumulation 4
]


@pytest.mark.parametrize('name,world_size,global_batch,lr', PAPER_RUNS, ids=[r[0] for r in PAPER_RUNS])
def test_config_gives_the_paper_runs_batch_and_lr(train_tool, name, world_size, global_batch, lr):
    cfg = train_tool.load_config(ROOT / 'configs' / 'cls' / f'{name}.yaml')
    batch, (peak, _, _) = train_tool.scaled_lrs(cfg, world_size)
    assert batch == global_batch and peak == pytest.approx(lr)
