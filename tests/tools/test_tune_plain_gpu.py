"""tools/tune_plain_gpu.py end to end on CPU (Triton's interpreter, tiny shapes, two candidates per stage): the
sweep times the shipped launch first and checks every candidate against it; confirm compares the shipped table
with a pinned launch and with another copy of the kernels' module."""
import json
import os
import subprocess
import sys

import pytest

TOOL = os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'tune_plain_gpu.py')
KERNELS = os.path.join(os.path.dirname(__file__), '..', '..', 'vmamba_zoo', 'ops', 'selective_scan', 'triton.py')


def _run(*args):
    env = dict(os.environ, TUNE_PLAIN_SMOKE='1', TRITON_INTERPRET='1')
    result = subprocess.run([sys.executable, TOOL, *args, '--workers', '1', '--dtypes', 'float32'], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'failed' not in result.stdout.replace('0 failed or off', ''), result.stdout


@pytest.fixture(scope='module')
def triton_interpreter():
    pytest.importorskip('triton')


def test_sweep_and_confirm_on_cpu(tmp_path, triton_interpreter):
    _run('sweep', '--out', str(tmp_path), '--stages', '49')
    sweep = json.load(open(tmp_path / 'tune_plain.json'))
    (stage,) = sweep['stages']
    from vmamba_zoo.ops.selective_scan.triton import _launch_config
    import torch
    _, bl, (bdf, wf), (bdb, wb), _, sh = _launch_config(1, 49, dtype=torch.float32)
    assert stage['rows'][0]['spec'] == f'{bl},{bdf},{wf},{bdb},{wb},{int(sh)}'  # the shipped launch first
    assert len(stage['rows']) >= 2
    assert all(row['max_rel_err_vs_shipped'] < 1e-4 and row['fwdbwd_ms'] > 0 for row in stage['rows'])

    _run('confirm', '--out', str(tmp_path), '--stages', '49', '--rounds', '1', '--against', '49=16,32,4,16,4,0',
         '--old-module', KERNELS)
    rows = json.load(open(tmp_path / 'confirm.json'))['rows']
    assert [row['case'] for row in rows] == ['VMamba-T D=768 L=49', 'Vim-T-like N=16 L=197']
    assert rows[0]['old_module_max_rel_err'] == 0.0  # the same kernels, loaded from the file
    assert rows[0]['against_max_rel_err'] < 1e-4 and 'against_fwdbwd_ms' not in rows[1]
