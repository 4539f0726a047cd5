"""tools/tune_fused_gpu.py: its baseline must be the launch table the code ships, or the tuning compares against
something users never run."""
import importlib.util
import os

import torch

TOOLS = os.path.join(os.path.dirname(__file__), '..', '..', 'tools')


def _load_tool():
    spec = importlib.util.spec_from_file_location('tune_fused_gpu', os.path.join(TOOLS, 'tune_fused_gpu.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baseline_is_the_shipped_fused_table(monkeypatch):
    from vmamba_zoo.ops.selective_scan.triton import _launch_config
    monkeypatch.delenv('VMAMBA_ZOO_FUSED_BLOCKS', raising=False)
    tool = _load_tool()
    for length, spec in tool.BASELINE.items():
        bl, bdf, wf, bdb, wb, bc, sh = (int(v) for v in spec.split(','))
        assert _launch_config(1, length, fused=True, dtype=torch.bfloat16) == \
            (1, bl, (bdf, wf), (bdb, wb), bool(bc), bool(sh)), length
