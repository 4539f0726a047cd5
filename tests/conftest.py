import os

import pytest
import torch

# Tests are CPU-only unless marked gpu; keep thread count predictable when pytest-xdist runs 2 workers.
torch.set_num_threads(max(1, (os.cpu_count() or 2) // int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))))


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped on CPU-only machines)')
    config.addinivalue_line('markers', 'slow: heavier tests (large variants, FLOP counting)')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='no CUDA device')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)
