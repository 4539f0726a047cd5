"""tools/tune_fused_gpu.py: its baseline, written as the VMAMBA_ZOO_FUSED_BLOCKS value the tool pins for the
baseline runs, must launch exactly the table the code ships, or the tuning compares against something users never
run."""
import importlib.util
import os

import torch

TOOLS = os.path.join(os.path.dirname(__file__), '..', '..', 'tools')


def _load_tool():
    spec = importlib.util.spec_from_file_location('tune_fused_gpu', os.path.join(TOOLS, 'tune_fused_gpu.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baseline_spec_launches_the_shipped_fused_table(monkeypatch):
    from vmamba_zoo.ops.selective_scan.triton import _launch_config
    monkeypatch.delenv('VMAMBA_ZOO_FUSED_BLOCKS', raising=False)
    tool = _load_tool()
    shipped = {length: _launch_config(1, length, fused=True, dtype=torch.bfloat16) for length in tool.BASELINE}
    assert set(shipped) == {3136, 784, 196, 49}
    # the tool's baseline value: one row per stage, longest L bucket first to last as it writes them
    baseline = ';'.join(f'{bucket}:{tool.BASELINE[length]}'
                        for bucket, (_, length) in zip(tool.BUCKETS, reversed(tool.STAGES)))
    monkeypatch.setenv('VMAMBA_ZOO_FUSED_BLOCKS', baseline)
    for length, launch in shipped.items():
        assert _launch_config(1, length, fused=True, dtype=torch.bfloat16) == launch, length
