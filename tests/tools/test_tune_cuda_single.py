"""tools/tune_cuda_single.py on CPU: variant specs parse (or fail naming the problem), their macros and source folder
reach every compiler command of ``build_extension`` (the binding reads common.cuh's launch constants too), and the
table's medians and ratios are the arithmetic stated. Building and timing the variants is the device's part."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'tools'))
import tune_cuda_single as tune  # noqa: E402

from vmamba_zoo.ops.selective_scan import cuda as cuda_backend  # noqa: E402


def test_variant_specs():
    assert tune.parse_variant('shipped=') == ('shipped', {}, None)
    name, defines, src = tune.parse_variant('b4=bwd_items=4,bwd_blocks=3,row_warps=4,src=/tmp/k')
    assert (name, src) == ('b4', '/tmp/k')
    assert defines == {'VMZ_SINGLE_BWD_ITEMS': 4, 'VMZ_SINGLE_BWD_MIN_BLOCKS': 3, 'VMZ_SINGLE_ROW_WARPS': 4}
    assert tune.parse_variant('plain=fwd_staged=0,bwd_staged=0,bwd_sum_buffers=2')[1] == {
        'VMZ_SINGLE_FWD_STAGED': 0, 'VMZ_SINGLE_BWD_STAGED': 0, 'VMZ_SINGLE_BWD_SUM_BUFFERS': 2}
    for bad, message in [('nosep', 'NAME=SPEC'), ('x=bwd_staged=2', 'one of'), ('x=bwd_sum_buffers=0', 'one of'),
                         ('x=bwd_items', 'not key=value'), ('x=lanes=4', "unknown key 'lanes'"),
                         ('x=bwd_items=3', 'one of'), ('x=fwd_blocks=0', 'positive integer'),
                         ('1x=', 'NAME=SPEC')]:
        with pytest.raises(ValueError, match=message):
            tune.parse_variant(bad)


def test_macros_and_sources_reach_every_compile_command(tmp_path, monkeypatch):
    home = tmp_path / 'cuda'
    (home / 'bin').mkdir(parents=True)
    (home / 'bin' / 'nvcc').write_text('')
    (home / 'lib64').mkdir()
    (home / 'lib64' / 'libcudart.so').write_text('')
    commands = []
    monkeypatch.setattr(cuda_backend, '_run_compiler', commands.append)
    kernels = Path(cuda_backend.KERNEL_DIR)
    cuda_backend.build_extension(home, tmp_path / 'build', archs=['9.0'], jobs=1, kernel_dir=kernels,
                                 defines={'VMZ_SINGLE_BWD_ITEMS': 4})
    compiles, link = commands[:-1], commands[-1]
    assert len(compiles) == len(list(kernels.glob('*.cu'))) + 1  # every .cu and the binding
    for command in compiles:
        assert '-DVMZ_SINGLE_BWD_ITEMS=4' in command
        assert command[command.index('-c') + 1].startswith(str(kernels))
    assert '-shared' in link
    with pytest.raises(ValueError, match='not identifiers'):
        cuda_backend.build_extension(home, tmp_path / 'build', defines={'BAD-NAME': 1})
    with pytest.raises(RuntimeError, match='not found in'):
        cuda_backend.build_extension(home, tmp_path / 'build', kernel_dir=tmp_path)


def test_ratio_table_medians_and_ratios():
    runs = {'a': [{(1, 'float32'): (1.0, 4.0, 1e-6)}, {(1, 'float32'): (3.0, 2.0, 3e-6)}],
            'b': [{(1, 'float32'): (1.0, 1.0, 2e-6)}, {(1, 'float32'): (1.0, 2.0, 1e-6)}]}
    (row,) = tune.ratio_table(['a', 'b'], runs)
    a, b = row['variants']['a'], row['variants']['b']
    assert (a['fwd_ms'], a['fwdbwd_ms'], a['max_rel_err']) == (2.0, 3.0, 3e-6)
    assert (b['fwd_ms'], b['fwdbwd_ms'], b['max_rel_err']) == (1.0, 1.5, 2e-6)
    assert a['fwdbwd_ratio'] == 1.0 and b['fwdbwd_ratio'] == 2.0 and b['fwd_ratio'] == 2.0
    text = tune.format_table(['a', 'b'], [row])
    assert '(2.00x)' in text and '3.0e-06' in text
    assert tune.off_variants([row]) == []
    row['variants']['b']['max_rel_err'] = float('nan')  # a NaN is off too
    assert [v for v, *_ in tune.off_variants([row])] == ['b']


def test_driver_refuses_repeated_names(capsys):
    with pytest.raises(SystemExit):
        tune.main(['--variant', 'a=', '--variant', 'a=bwd_items=4', '--out', '/nonexistent'])
    assert 'repeat' in capsys.readouterr().err
