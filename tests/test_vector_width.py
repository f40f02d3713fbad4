"""The kernels' vector width follows the CPU Numba compiles for: 64-byte
vectors (zmm) with AVX-512F, 32-byte vectors (ymm) without. On an AVX-512
machine the rest of the suite checks the 64-byte build; this file runs the
kernel tests again in a child process told to compile for an AVX2 CPU
(``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``: Numba's own settings, which
also key its on-disk cache), so both widths are checked on one machine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core import config

from numba_affine._simd import VECTOR_BYTES
from numba_affine.bench import avx2_environment


def _cpuinfo_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


@pytest.mark.skipif(
    not _cpuinfo_flags() or bool(config.CPU_NAME or config.CPU_FEATURES),
    reason="needs /proc/cpuinfo and Numba compiling for this host's own CPU",
)
def test_width_matches_the_cpu_flags_the_kernel_reports():
    # the kernel's CPU flags, not the LLVM feature string _simd reads
    assert VECTOR_BYTES == (64 if "avx512f" in _cpuinfo_flags() else 32)


@pytest.mark.skipif(
    VECTOR_BYTES != 64,
    reason="this machine has no AVX-512: the whole suite already runs the 32-byte kernels",
)
def test_kernels_at_the_avx2_width():
    env = dict(os.environ, **avx2_environment())  # AVX2 + FMA, no AVX-512
    here = Path(__file__).parent
    width = subprocess.run(
        [sys.executable, "-c", "from numba_affine._simd import VECTOR_BYTES; print(VECTOR_BYTES)"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert width.stdout.strip() == "32", width.stderr
    # the kernel tests at this width, incl. the machine-code check for ymm FMAs
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here / "test_kernels.py")],
        env=env, cwd=here.parent, capture_output=True, text=True, timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
