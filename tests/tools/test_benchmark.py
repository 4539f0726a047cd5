"""tools/benchmark.py on CPU with tiny settings: the table, ratios, CSV/JSON and plot outputs."""
import csv
import json

import pytest

from .test_convert import _load_tool


def test_benchmark_compares_models_and_writes_outputs(tmp_path):
    bench = _load_tool('benchmark')
    rows = bench.main(['efficientvmamba_tiny', '--compare', 'resnet18', '--batch', '2', '--resolutions', '64', '96',
                       '--warmup', '0', '--reps', '1', '--csv', str(tmp_path / 'b.csv'),
                       '--json', str(tmp_path / 'b.json'), '--plot', str(tmp_path / 'b.png')])
    by_key = {(r['model'], r['resolution']): r for r in rows}
    assert set(by_key) == {('efficientvmamba_tiny', 64), ('resnet18', 64), ('efficientvmamba_tiny', 96),
                           ('resnet18', 96)}
    tiny = by_key[('efficientvmamba_tiny', 64)]
    assert tiny['params_m'] == pytest.approx(6.49, abs=0.01)
    assert tiny['infer_img_s'] > 0 and tiny['train_img_s'] > 0 and tiny['latency_bs1_ms'] > 0
    assert by_key[('resnet18', 64)]['infer_img_s_x_ref'] == pytest.approx(1.0)
    assert tiny['params_m_x_ref'] == pytest.approx(6.49 / 11.69, rel=0.01)
    assert 'gflops' in tiny and 'gflops' not in by_key[('efficientvmamba_tiny', 96)]  # FLOPs at the first resolution
    assert len(list(csv.DictReader(open(tmp_path / 'b.csv')))) == 4
    assert len(json.loads((tmp_path / 'b.json').read_text())['rows']) == 4
    assert (tmp_path / 'b.png').stat().st_size > 1000


def test_benchmark_globs_and_unknown_names():
    bench = _load_tool('benchmark')
    assert 'vmamba_tiny' in bench.expand_names(['vmamba_t*'])
    with pytest.raises(SystemExit, match='unknown model'):
        bench.expand_names(['not_a_model'])


def test_benchmark_counts_only_rebuilds_vits_per_resolution_and_keeps_going(tmp_path):
    bench = _load_tool('benchmark')
    assert 'resnet18' in bench.expand_names(['resnet1*'])  # no zoo match: timm's names
    out = tmp_path / 'counts.json'
    rows = bench.main(['deit_tiny_patch16_224', '--resolutions', '64', '--no-timing', '--json', str(out)])
    assert rows[0]['gflops'] > 0 and 'infer_img_s' not in rows[0]  # a fixed-size ViT, rebuilt for 64x64
    env = json.loads(out.read_text())['environment']
    assert env['device'] == 'cpu' and env['date_utc'].endswith('UTC') and env['torch'] and env['cpu']
    rows = bench.main(['vmamba_tiny', '--resolutions', '16', '--no-flops', '--no-train', '--warmup', '0', '--reps',
                       '1', '--keep-going'])
    assert rows[0]['error'].startswith('ValueError') and 'at least 32x32' in rows[0]['error']
