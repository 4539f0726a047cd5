"""tools/kernel_stats.py: the scan kernels' launches recorded from the host code and compiled for sm_90 on CPU."""
import os
import sys

import pytest
import torch

pytest.importorskip('triton')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'tools'))
import kernel_stats  # noqa: E402

pytestmark = pytest.mark.skipif(not kernel_stats.tools_available(), reason="Triton's ptxas / cuobjdump missing")


def test_records_the_launch_rule_and_compiles_both_kernels(tmp_path):
    rows = kernel_stats.main(['--paths', 'plain', '--stages', '4', '--dtypes', 'float32', '--json',
                              str(tmp_path / 'stats.json')])
    assert [r['kernel'] for r in rows] == ['fwd', 'bwd']
    fwd, bwd = rows
    # the launch the host code chose (plain L = 49 in fp32: the table's 32-step chunks, the recomputing backward)
    from vmamba_zoo.ops.selective_scan.triton import _launch_config
    _, block_l, (fwd_d, _), (bwd_d, _), _, shifted = _launch_config(1, 49, dtype=torch.float32)
    assert (block_l, shifted) == (32, False)
    assert fwd['BLOCK_L'] == bwd['BLOCK_L'] == block_l and bwd['SHIFTED_SCAN'] is False and bwd['FUSED'] is False
    assert (fwd['BLOCK_D'], bwd['BLOCK_D']) == (fwd_d, bwd_d)
    for row in rows:
        assert 0 < row['registers'] <= 255 and row['sass'] > 100 and row['mufu'] > 0 and row['global_loads'] > 0
    assert bwd['sass'] > fwd['sass']  # the backward does the forward's work again and more
    assert (tmp_path / 'stats.json').stat().st_size > 0
