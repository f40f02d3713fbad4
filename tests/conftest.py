import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest


@pytest.fixture
def set_tuning(monkeypatch):
    """Change values of numba_affine.tuning for one test (plans are cached: cleared before and after)."""
    from numba_affine import kernels, tuning

    def change(**values):
        for name, value in values.items():
            assert hasattr(tuning, name), name
            monkeypatch.setattr(tuning, name, value)
        kernels.plan.cache_clear()

    yield change
    monkeypatch.undo()
    kernels.plan.cache_clear()
