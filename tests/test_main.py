"""The main job and the benchmark command run as documented."""

import re
import subprocess
import sys
import time

import numpy as np
import pytest

from numba_affine import bench


def test_python_m_numba_affine_replays_the_seed():
    proc = subprocess.run([sys.executable, "-m", "numba_affine"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the seed's printed shapes, in order
    expected = ["(3, 3)", "(20, 50)", "(50, 10)", "(10,)", "(20, 10)", "(20, 10)", "(20, 50)", "None"]
    pos = 0
    for item in expected:
        pos = out.index(item, pos)
    assert "every result above matches the notebook's numpy formulas" in out
    assert "100x784x100" in out and "speed-up" in out


def test_bench_table_for_a_given_shape(capsys):
    assert bench.main(["--only", "--shape", "7x5x3", "--rounds", "1", "--dtype", "float64", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "7x5x3" in out and "float64" in out
    import numba

    assert f"{numba.threading_layer()} threading layer, {numba.get_num_threads()} threads)" in out
    from numba_affine._simd import VECTOR_BYTES

    assert ("AVX-512 build" if VECTOR_BYTES == 64 else "AVX2 build") in out


def test_bench_isa_avx2_runs_the_avx2_build(capfd):
    from numba_affine._simd import VECTOR_BYTES

    assert bench.main(["--isa", "avx2", "--only", "--shape", "7x5x3", "--rounds", "1", "--dtype", "float32",
                       "--no-torch", "--no-jitted"]) == 0
    out = capfd.readouterr().out
    assert "7x5x3" in out and "AVX2 build" in out
    if VECTOR_BYTES == 64:  # compiled in a child for an AVX2 CPU
        assert "AVX2 build for haswell" in out


def test_bench_small_table_times_both_libraries_and_the_layer():
    t = bench.measure_small((3, 5, 2), np.float32, rounds=1, settle=0.0)
    for lib in ("numpy", "numba-affine"):
        for which in ("forward", "backward", "layer"):
            assert t[f"{lib} {which}"] > 0
    # the ratio printed is t(numpy) / t(numba-affine), checked against the shape's targets
    fake = {f"{lib} {w}": (2.0 if lib == "numpy" else 1.0) * (1 + i) for i, w in enumerate(("forward", "backward", "layer"))
            for lib in ("numpy", "numba-affine")}
    fake["numba-affine backward"] = 4.0  # numpy's 4.0 / 4.0
    row = bench.format_small([((20, 50, 10), "float64", fake)]).splitlines()[2]
    assert row.split("|")[1].split() == ["2.00x", "1.2✓"]
    assert row.split("|")[2].split() == ["1.00x", "1.5✗"]


def test_bench_rejects_a_bad_shape():
    with pytest.raises(SystemExit):
        bench.main(["--shape", "7x5"])


def test_bench_warmup_calls_before_each_batch_are_not_timed(monkeypatch):
    """With a fake clock where every call takes exactly 1 s, the time per call
    is 1 s with or without warm-up calls: they run, and are not timed."""

    class Clock:
        now = 0.0

        def perf_counter(self):
            return self.now

        def sleep(self, seconds):
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(bench, "time", clock)
    calls = []

    def one_second():
        calls.append(clock.now)
        clock.now += 1.0

    assert bench.compare({"f": one_second}, rounds=3, settle=0.0, warmup=0.0) == {"f": 1.0}
    without = len(calls)
    calls.clear()
    assert bench.compare({"f": one_second}, rounds=3, settle=0.0, warmup=2.5) == {"f": 1.0}
    assert len(calls) == without + 3 * 3  # three untimed calls before each of the three timed batches


def test_bench_accepts_warmup(capsys):
    assert bench.main(["--only", "--shape", "7x5x3", "--rounds", "1", "--dtype", "float32", "--no-torch", "--warmup", "0.01"]) == 0
    assert "7x5x3" in capsys.readouterr().out


def test_python_m_numba_affine_config_names_what_it_runs_on():
    proc = subprocess.run([sys.executable, "-m", "numba_affine", "--config"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in proc.stdout.splitlines())
    import numba
    import numpy as np

    from numba_affine import _simd

    assert lines["numba"] == numba.__version__ and lines["numpy"] == np.__version__
    assert lines["threading layer"].split()[0] in {"tbb", "omp", "workqueue"}
    assert lines["vector width"].startswith(f"{_simd.VECTOR_BYTES * 8} bits")
    assert lines["threads"].startswith(f"{numba.get_num_threads()} of ")
    import numba_affine

    assert lines["numba-affine"] == numba_affine.__version__
    assert lines["cache directory"]  # where the compiled kernels go
    assert lines["parallel calls"].startswith(("concurrent", "one at a time"))


def test_python_m_numba_affine_rejects_unknown_arguments():
    proc = subprocess.run([sys.executable, "-m", "numba_affine", "--nope"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "usage" in proc.stderr
