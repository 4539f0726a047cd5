"""tools/make_model_cards.py: every registered family gets a card, facts and measured numbers land in it."""
import json

import vmamba_zoo
from .test_convert import _load_tool


def _bench_file(path, rows, **env):
    env = {**dict(device='cpu', cpu='Test CPU (2 cores)', threads=1, torch='x', timm='y', batch=8, amp=False,
                  date_utc='2026-01-01 00:00 UTC'), **env}
    path.write_text(json.dumps({'environment': env, 'rows': rows}))
    return path


def test_every_registered_family_gets_a_card_with_facts_and_measurements(tmp_path):
    cards = _load_tool('make_model_cards')
    bench = _bench_file(tmp_path / 'cpu.json', [
        {'model': 'vmamba_tiny', 'device': 'cpu', 'batch': 8, 'resolution': 224, 'params_m': 30.2487,
         'gflops': 4.9121, 'infer_img_s': 12.345, 'latency_bs1_ms': 98.76, 'train_img_s': 3.2},
        {'model': 'vmamba_tiny', 'device': 'cpu', 'batch': 8, 'resolution': 512, 'infer_img_s': 1.0},
        {'model': 'vim_tiny_patch16_224', 'device': 'cpu', 'batch': 8, 'resolution': 224, 'error': 'boom'},
    ])
    gpu = _bench_file(tmp_path / 'gpu.json', [
        {'model': 'vmamba_tiny', 'device': 'cuda', 'batch': 128, 'resolution': 224, 'infer_img_s': 1686.4,
         'latency_bs1_ms': 5.0}], device='cuda', gpu='NVIDIA H200', batch=128, amp=True)
    summary = tmp_path / 'gpu_summary.json'  # tools/bench_gpu.py --measurements format
    summary.write_text(json.dumps({'plainmamba_l1': {'infer_fp32_img_s': 900.0, 'infer_bf16_img_s': 2001.2,
                                                     'device': 'NVIDIA H200', 'batch': 64}}))
    written = cards.main(['--bench', str(bench), str(gpu), str(summary), '--out', str(tmp_path / 'cards')])
    families = cards.families()
    assert set(written) == set(families) and {'vmamba', 'vim', 'plainmamba', 'mambaout'} <= set(families)
    assert sorted(n for names in families.values() for n in names) == vmamba_zoo.list_models()
    for family, path in written.items():
        text = path.read_text()
        assert text.startswith('# ') and '## Variants' in text and '## Usage' in text, family
        assert all(f'`{n}`' in text for n in families[family]), family

    vmamba = written['vmamba'].read_text()
    row = next(line for line in vmamba.splitlines() if line.startswith('| `vmamba_tiny` |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    # model, paper name, params, GFLOPs, paper params/FLOPs, top-1, CPU img/s, CPU latency, GPU img/s, config
    assert cells[1:] == ['VMamba-T [s1l8]', '30.25', '4.91', '30M / 4.9G', '82.6', '12.3', '98.8', '1686',
                         '`configs/cls/vmamba/vmamba_tiny.yaml`']
    assert 'NVIDIA H200' in vmamba and 'Test CPU (2 cores), 1 threads' in vmamba and '2026-01-01' in vmamba
    assert '@article{liu2024vmamba' in vmamba and 'MIT' in vmamba and '| `vmamba_small` | 48.7 / 43.7' in vmamba
    assert 'GPU img/s (batch 128)' in vmamba and 'CPU img/s (batch 8)' in vmamba
    plain = written['plainmamba'].read_text()
    assert 'GPU img/s (batch 64)' in plain and '| 2001 |' in plain and 'gpu_summary.json' in plain
    vim = written['vim'].read_text()  # an error row is no measurement
    assert next(line for line in vim.splitlines() if line.startswith('| `vim_tiny_patch16_224` |')).count('—') >= 4


def test_family_without_facts_still_gets_a_card(tmp_path, monkeypatch):
    cards = _load_tool('make_model_cards')
    monkeypatch.setattr(cards, 'FACTS', tmp_path / 'no_facts')
    written = cards.main(['--bench', '--families', 'vmamba', '--out', str(tmp_path)])
    text = written['vmamba'].read_text()
    assert 'model_cards/facts/vmamba.yaml' in text and 'not recorded yet' in text
    assert 'VMamba: Visual State Space Model' in text  # from the pretrained cfgs
    assert 'Hierarchical 4-stage backbone' in text      # the module docstring's summary


def test_facts_files_name_registered_models():
    cards = _load_tool('make_model_cards')
    registered = set(vmamba_zoo.list_models())
    for path in sorted(cards.FACTS.glob('*.yaml')):
        facts = cards.load_facts(path.stem)
        assert path.stem in cards.families(), f'{path.name}: no registered family {path.stem!r}'
        names = set(facts.get('variants', {})) | set((facts.get('downstream') or {}).get('rows', {}))
        assert names <= registered, f'{path.name}: unknown models {sorted(names - registered)}'
        assert facts.get('citation') and facts.get('weights_license') and facts.get('paper'), path.name
