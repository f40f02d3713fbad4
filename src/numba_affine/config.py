"""``show_config()``: what numba-affine runs on in this process.

The threading layer is the one Numba has started, or, before the first
parallel call, the one it will pick: ``NUMBA_THREADING_LAYER`` when set,
else the first of TBB, OpenMP, workqueue that loads (Numba's own order).
"""

from __future__ import annotations

import importlib
import os
import sys

import numba
import numpy as np

from . import _jit, _simd

__all__ = ["config", "show_config"]

_LAYER_MODULES = (("tbb", "tbbpool"), ("omp", "omppool"), ("workqueue", "workqueue"))


def _threading_layer() -> tuple[str, str]:
    """(layer, how it was decided)."""
    from .api import _running_layer

    running = _running_layer()
    if running is not None:
        return running, "running"
    chosen = numba.config.THREADING_LAYER
    if chosen in {name for name, _ in _LAYER_MODULES}:
        return chosen, "NUMBA_THREADING_LAYER"
    for name, module in _LAYER_MODULES:
        try:
            importlib.import_module(f"numba.np.ufunc.{module}")
        except ImportError:
            continue
        return name, "first parallel call will start it"
    return "none", "no threading layer loads"


def _cache_directory() -> str:
    if not _jit._cache_wanted():
        return "off (NUMBA_AFFINE_NO_CACHE)"
    return numba.config.CACHE_DIR or "next to the package (__pycache__), else the user cache"


def config() -> dict[str, str]:
    """The facts :func:`show_config` prints, as strings keyed by name."""
    layer, how = _threading_layer()
    return {
        "numba-affine": sys.modules["numba_affine"].__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "threading layer": f"{layer} ({how})",
        "tbb library": _jit.TBB_LIBRARY or "not loaded by numba-affine",
        "threads": f"{numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}",
        "vector width": f"{_simd.VECTOR_BYTES * 8} bits "
                        f"({_simd.VECTOR_BYTES // 8} float64 / {_simd.VECTOR_BYTES // 4} float32 lanes)",
        "cpu": numba.config.CPU_NAME or _host_cpu(),
        "parallel calls": _parallel_calls(layer),
        "cache directory": _cache_directory(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "") or "not set (GNU OpenMP's default)",
    }


def _parallel_calls(layer: str) -> str:
    """Whether parallel calls from several Python threads run at once (see ``api._run_parallel``)."""
    from . import api

    if api._concurrent_layer:
        return "concurrent from Python threads"
    if layer in ("tbb", "omp"):
        return "concurrent from Python threads once the first has run (it runs alone)"
    return "one at a time (Numba's workqueue layer aborts on concurrent parallel regions)"


def _host_cpu() -> str:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name()


def show_config() -> None:
    """Print the threading layer, threads, vector width, cache directory and versions."""
    facts = config()
    width = max(map(len, facts))
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
