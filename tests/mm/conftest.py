"""tests/mm: the mmdet / mmseg wrappers, configs and CPU training runs.

They need the OpenMMLab stack (``tools/install_mm.sh``); without it they are skipped with the reason, unless
``VMAMBA_ZOO_REQUIRE_MM=1`` (set by ``make test``, which installs the stack first): then a missing or broken
install fails instead of hiding behind a skip.
"""
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    """tools/<name>.py as a module (tools/ is scripts, not a package)."""
    key = f'_vmamba_zoo_tool_{name}'
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / 'tools' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _mm_import_error():
    try:
        for name in ('mmcv', 'mmcv.ops', 'mmengine', 'mmdet', 'mmseg', 'vmamba_zoo.mm'):
            importlib.import_module(name)
    except Exception as e:  # ImportError, or mmdet / mmseg's AssertionError on an mmcv version they refuse
        return f'{type(e).__name__}: {e}'
    return None


MM_ERROR = _mm_import_error()


def pytest_collection_modifyitems(config, items):
    if MM_ERROR is None:
        return
    here = os.path.dirname(__file__)
    mine = [item for item in items if str(item.fspath).startswith(here) and 'no_mm' not in item.keywords]
    if os.environ.get('VMAMBA_ZOO_REQUIRE_MM') == '1':
        for item in mine:
            item.add_marker(pytest.mark.usefixtures('_require_mm'))
        return
    skip = pytest.mark.skip(reason=f'mmdet / mmseg not importable ({MM_ERROR}); run tools/install_mm.sh')
    for item in mine:
        item.add_marker(skip)


@pytest.fixture
def _require_mm():
    pytest.fail(f'VMAMBA_ZOO_REQUIRE_MM=1 but the mm stack does not import: {MM_ERROR}')


def pytest_configure(config):
    config.addinivalue_line('markers', 'no_mm: runs without the mm stack')


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory):
    write_coco = load_tool('make_synthetic').write_coco
    root = tmp_path_factory.mktemp('coco')
    meta = write_coco(root, num_classes=3, train_images=16, val_images=6, size=64, max_objects=3, seed=0)
    return root, meta


@pytest.fixture(scope='session')
def synthetic_ade(tmp_path_factory):
    write_ade20k = load_tool('make_synthetic').write_ade20k
    root = tmp_path_factory.mktemp('ade')
    meta = write_ade20k(root, num_classes=3, train_images=16, val_images=6, size=64, max_objects=3, seed=0)
    return root, meta
