"""Dependable under threads, forks, repeated calls, random inputs and a
shared or unwritable compile cache."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import assert_matches, backward, forward, make_inputs

import numba_affine as na
from numba_affine import _jit, api


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def test_python_threads_run_forward_and_backward_concurrently(monkeypatch):
    jobs = [((257, 130, 67), np.float64), ((64, 300, 20), np.float32),
            ((20, 50, 10), np.float64), ((131, 129, 5), np.float32)] * 3

    def work(job):
        shape, dtype = job
        x, W, b, dout = make_inputs(*shape, dtype, seed=sum(shape))
        results = []
        for _ in range(20):
            results.append((na.affine_forward(x, W, b),) + na.affine_backward(dout, x, W))
        ref = (forward(*f64(x, W, b)),) + backward(*f64(dout, x, W))
        for res in results:
            for got, want, k in zip(res, ref, (shape[1], shape[2], shape[0], shape[0])):
                assert_matches(got, want, dtype, k)
        return True

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, jobs))


def test_kernels_release_the_gil():
    from numba_affine import kernels

    for dispatcher in (*kernels.product, kernels.column_sums, kernels.row_product, kernels.register_block, kernels.register_block_narrow):
        assert dispatcher.targetoptions.get("nogil") is True



def _child(*args, env=None, cwd=None, timeout=600) -> str:
    """Run ``python *args`` in a fresh process; its stdout, after it exited 0."""
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


FORK_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp
    import numpy as np
    import numba_affine as na

    def child(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((300, 400)); W = rng.standard_normal((400, 50)); b = rng.standard_normal(50)
        d = rng.standard_normal((300, 50))
        y = na.affine_forward(x, W, b)
        dx, dW, db = na.affine_backward(d, x, W)
        ok = (np.allclose(y, x @ W + b) and np.allclose(dx, d @ W.T) and np.allclose(dW, x.T @ d)
              and np.allclose(db, d.sum(0)))
        return ok

    if __name__ == "__main__":
        # the parent runs the parallel kernels first: GNU OpenMP is now in use
        assert child(0)
        ctx = mp.get_context("fork")
        with ctx.Pool(2) as pool:
            results = pool.map(child, range(1, 5))
        assert all(results), results
        p = ctx.Process(target=child, args=(9,))
        p.start(); p.join(120)
        assert p.exitcode == 0, p.exitcode
        print("fork ok")
    """
)


@pytest.mark.parametrize("layer", ["default", "omp"])
def test_forked_children_run_the_kernels(tmp_path, layer):
    script = tmp_path / "fork_after_parallel.py"
    script.write_text(FORK_SCRIPT)
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fork ok" in proc.stdout
    assert "OpenMP" not in proc.stderr


LAYER_SCRIPT = textwrap.dedent(
    """
    import numba, numpy as np
    import numba_affine as na
    from numba_affine import _jit, config
    predicted = config.config()["threading layer"].split()[0]
    x = np.random.rand(300, 400); W = np.random.rand(400, 50); b = np.random.rand(50)
    assert np.allclose(na.affine_forward(x, W, b), x @ W + b)  # large enough for the parallel kernel
    running = config.config()["threading layer"]
    assert predicted == numba.threading_layer() and running == predicted + " (running)", (predicted, running)
    print(numba.threading_layer(), _jit.TBB_LIBRARY)
    """
)


def _tbb_installed():
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("tbb")
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("setting", [None, "omp"])
def test_threading_layer_is_tbb_when_installed_unless_the_user_chose(setting):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if setting:
        env["NUMBA_THREADING_LAYER"] = setting
    layer, library = _child("-c", LAYER_SCRIPT, env=env).split()
    if setting:
        assert layer == setting
    elif _tbb_installed():  # a default dependency on x86-64 Linux; Numba finds it through _jit
        assert layer == "tbb" and library.endswith("libtbb.so.12")
    else:
        assert layer == "omp" and library == "None"


def test_a_forked_child_uses_the_serial_kernels(monkeypatch):
    chosen = []
    real = api.kernels.entry

    def spy(dtype, parallel):
        twin = real(dtype, parallel)

        def run(*args):
            chosen.append(parallel)
            return twin(*args)
        return run

    monkeypatch.setattr(api.kernels, "entry", spy)
    monkeypatch.setattr(api, "_SHORT", {})  # (the short paths keep the kernel they were given)
    x, W, b, _ = make_inputs(300, 400, 50, np.float64)
    monkeypatch.setattr(api, "_in_forked_child", True)
    y = na.affine_forward(x, W, b)
    monkeypatch.setattr(api, "_in_forked_child", False)
    np.testing.assert_array_equal(na.affine_forward(x, W, b), y)
    # the child's call ran serial twins only (a second call when it asked for scratch), the parent's the parallel one
    assert chosen[:-1] and not any(chosen[:-1]) and chosen[-1] == (numba.get_num_threads() > 1)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_repeated_calls_do_not_leak():
    """20,000 more calls leave Python's traced memory (numpy arrays included)
    within 64 KiB, so a leak of 4 bytes a call is caught, and Numba's own
    allocations are all freed."""
    import tracemalloc

    from numba.core.runtime import _nrt_python, rtsys

    x, W, b, dout = make_inputs(20, 50, 10, np.float64)
    xl, Wl, bl, doutl = make_inputs(64, 300, 40, np.float32)
    x1 = xl[0]

    def calls(n):
        for i in range(n):
            if i % 2:
                na.affine_forward(x, W, b)
                na.affine_backward(dout, x, W)
            else:
                na.affine_forward(xl, Wl, bl)
                na.affine_backward(doutl, xl, Wl)
                na.affine_forward(x1, Wl, bl)

    _nrt_python.memsys_enable_stats()
    calls(500)
    tracemalloc.start()
    try:
        calls(500)
        before = tracemalloc.get_traced_memory()[0]
        nrt_before = rtsys.get_allocation_stats()
        calls(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
        nrt_after = rtsys.get_allocation_stats()
    finally:
        tracemalloc.stop()
    assert grown < 64 << 10, f"traced memory grew by {grown} bytes"
    assert nrt_after.alloc - nrt_before.alloc == nrt_after.free - nrt_before.free


GOOD = [np.float32, np.float64]
BAD = [np.float16, np.int32, np.int64, np.complex128, np.bool_, object]
dim = st.integers(0, 64)


def _layout(draw, a):
    kind = draw(st.sampled_from(["C", "F", "neg", "strided"]))
    if a.ndim < 2 or kind == "C":
        return a
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "neg":
        return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 2), a.dtype)
    big[::2, ::2] = a
    return big[::2, ::2]


@st.composite
def calls(draw):
    N, D, H = draw(dim), draw(dim), draw(dim)
    dtype = draw(st.sampled_from(GOOD))
    x, W, b, dout = make_inputs(N, D, H, dtype, seed=draw(st.integers(0, 1000)))
    broken = draw(st.sampled_from(["none", "none", "none", "dtype", "mix", "shape_x", "shape_b", "shape_dout", "ndim_W"]))
    if broken == "dtype":
        bad = draw(st.sampled_from(BAD))
        x, W, b, dout = (a.astype(bad) for a in (x, W, b, dout))
    elif broken == "mix":
        which = draw(st.sampled_from(["x", "W", "b", "dout"]))
        other = np.float32 if dtype == np.float64 else np.float64
        if which == "x":
            x = x.astype(other)
        elif which == "W":
            W = W.astype(other)
        elif which == "b":
            b = b.astype(other)
            broken = "mix_b"
        else:
            dout = dout.astype(other)
            broken = "mix_dout"
    elif broken == "shape_x":
        x = make_inputs(N, D + draw(st.integers(1, 3)), H, dtype)[0]
    elif broken == "shape_b":
        b = np.ones(H + draw(st.integers(1, 3)), dtype)
    elif broken == "shape_dout":
        dout = np.ones((N + draw(st.integers(1, 3)), H), dtype)
    elif broken == "ndim_W":
        W = W.reshape(-1)
    x, W, dout = _layout(draw, x), _layout(draw, W), _layout(draw, dout)
    return broken, x, W, b, dout


#: Which calls each kind of breakage must make fail (the other must still work).
FAILS = {"none": (), "mix_b": ("forward",), "shape_b": ("forward",), "mix_dout": ("backward",),
         "shape_dout": ("backward",)}


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls())
def test_random_calls_give_the_reference_or_a_clean_error(call):
    broken, x, W, b, dout = call
    snapshot = [a.copy() for a in (x, W, b, dout)]
    fails = FAILS.get(broken, ("forward", "backward"))
    if "forward" in fails:
        with pytest.raises((TypeError, ValueError)):
            na.affine_forward(x, W, b)
    else:
        assert_matches(na.affine_forward(x, W, b), forward(*f64(x, W, b)), x.dtype, x.shape[1])
    if "backward" in fails:
        with pytest.raises((TypeError, ValueError)):
            na.affine_backward(dout, x, W)
    else:
        N, D = x.shape
        H = W.shape[1]
        for got, want, k in zip(na.affine_backward(dout, x, W), backward(*f64(dout, x, W)), (H, N, N)):
            assert_matches(got, want, x.dtype, k)
    for a, c in zip((x, W, b, dout), snapshot):
        np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------- compile cache

CACHE_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import numba_affine as na
    from numba_affine import kernels
    x = np.random.rand(30, 40); W = np.random.rand(40, 20); b = np.random.rand(20); d = np.random.rand(30, 20)
    ok = np.allclose(na.affine_forward(x, W, b), x @ W + b)
    dx, dW, db = na.affine_backward(d, x, W)
    ok = ok and np.allclose(dx, d @ W.T) and np.allclose(dW, x.T @ d) and np.allclose(db, d.sum(0))
    kernel = kernels.entry(np.float64, False)  # what the calls ran
    hits = sum(kernel.stats.cache_hits.values())
    misses = sum(kernel.stats.cache_misses.values())
    print("ok" if ok else "WRONG", hits, misses)
    """
)


def _run_parallel(n, env):
    procs = [subprocess.Popen([sys.executable, "-c", CACHE_SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
        outs.append(out.split())
    return outs


def test_processes_share_one_empty_cache_dir(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first = _run_parallel(3, env)
    assert all(o[0] == "ok" for o in first), first
    assert any(int(o[2]) > 0 for o in first)  # someone compiled
    second = _run_parallel(3, env)
    assert all(o[0] == "ok" for o in second), second
    assert all(int(o[1]) > 0 and int(o[2]) == 0 for o in second), second  # all loaded from the cache


STALE_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import numba_affine as na
    from numba_affine import kernels
    x, W, b = np.ones((20, 50)), np.ones((50, 16)), np.ones(16)
    y = na.affine_forward(x, W, b)
    hits = sum(kernels.entry(np.float64, False).stats.cache_hits.values())
    print(y[0, 0], hits, na.__file__)
    """
)


def test_an_edited_helper_is_compiled_afresh_not_loaded_stale(tmp_path):
    """Numba's cache checks only the cached function's own file; the kernels'
    key holds a digest of every source file, so an edit in a helper that the
    product embeds (the register block) is seen on the next run."""
    import shutil

    package = tmp_path / "numba_affine"
    shutil.copytree(Path(na.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_AFFINE_NO_CACHE", None)

    def run():
        value, hits, where = _child("-c", STALE_SCRIPT, env=env, cwd=tmp_path).split()
        assert where.startswith(str(package))
        return float(value), int(hits)

    assert run() == (51.0, 0)  # compiled, and cached
    assert run() == (51.0, 1)  # loaded from the cache
    block = package / "kernels" / "register_block.py"
    text = block.read_text()
    edited = text.replace("s00, s01 = vadd(s00, b_lo), vadd(s01, b_hi)", "s00, s01 = vadd(vadd(s00, b_lo), b_lo), vadd(s01, b_hi)")
    assert edited != text
    block.write_text(edited)
    assert run() == (52.0, 0)  # the edit runs: compiled again, not the stale machine code
    assert run() == (52.0, 1)


def test_no_writable_cache_location_anywhere_still_works(tmp_path):
    """No cache location can be written (next to the package, the user's cache
    directory): the kernels and the jitted calls compile without a cache
    instead of failing. Each location is blocked by a regular file where a
    directory would have to be made, which stops root as well."""
    import shutil

    package = tmp_path / "site" / "numba_affine"
    shutil.copytree(Path(na.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for folder in [package, *[p for p in package.rglob("*") if p.is_dir()]]:
        (folder / "__pycache__").write_text("a file, so no cache directory can be made here")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), HOME=str(blocker / "home"),
               XDG_CACHE_HOME=str(blocker / "cache"))
    for name in ("NUMBA_CACHE_DIR", "NUMBA_AFFINE_NO_CACHE"):
        env.pop(name, None)
    code = textwrap.dedent(
        """
        import numpy as np
        from numba import njit
        import numba_affine as na
        from numba_affine import _jit, kernels
        x, W, b = np.ones((20, 50)), np.ones((50, 10)), np.ones(10)
        assert na.affine_forward(x, W, b)[0, 0] == 51.0

        @njit
        def step(x, W, b):
            return na.affine_forward(x, W, b)

        assert step(x, W, b)[0, 0] == 51.0
        print(_jit.OVERLOAD_OPTIONS["cache"], kernels.product.serial._cache.__class__.__name__, na.__file__)
        """
    )
    cached, cache_class, where = _child("-c", code, env=env, cwd=tmp_path, timeout=900).split()
    assert where.startswith(str(package))
    assert (cached, cache_class) == ("False", "NullCache")  # no cache, and no failure


def test_jit_falls_back_to_no_cache_when_numba_finds_no_cache_location(monkeypatch):
    calls = []

    def fake_njit(cache=False, **options):
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return lambda f: ("compiled", f, options)

    monkeypatch.setattr(_jit, "njit", fake_njit)
    result = _jit._jit(lambda: None)
    assert calls == [True, False] and result[0] == "compiled"


CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import threading
    import numpy as np
    import numba, numba_affine as na
    from numba_affine import api
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 800)); W = rng.standard_normal((800, 300)); b = rng.standard_normal(300)
    want = na.affine_forward(x, W, b)
    errors = []
    start = threading.Barrier(4)

    def work():
        start.wait()
        for _ in range(5):
            if not np.array_equal(na.affine_forward(x, W, b), want):
                errors.append("differs")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors
    from numba_affine import config
    said = config.config()["parallel calls"]
    assert said.startswith("one at a time" if numba.threading_layer() == "workqueue" else "concurrent"), said
    print(numba.threading_layer(), api._concurrent_layer)
    """
)


@pytest.mark.parametrize("layer", ["tbb", "omp", "workqueue"])
def test_concurrent_parallel_calls_are_safe_on_every_layer(layer):
    """4 Python threads call a parallel forward at once (workqueue terminated
    the process on this before its calls were serialised)."""
    if layer == "tbb" and not _tbb_installed():
        pytest.skip("the tbb wheel is not installed here")  # a default dependency on x86-64 Linux and Windows
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    running, concurrent = _child("-c", CONCURRENT_SCRIPT, env=env).split()
    assert running == layer
    assert concurrent == ("False" if layer == "workqueue" else "True")


SIDE_EFFECTS_SCRIPT = textwrap.dedent(
    """
    import os, sys
    before = dict(os.environ)
    import numba_affine as na
    assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
    maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
    print("libtbb" in maps, na._jit.TBB_LIBRARY is not None)
    """
)


@pytest.mark.parametrize("setting", [None, "omp", "workqueue"])
def test_import_changes_no_environment_and_loads_tbb_only_for_tbb(setting):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    if setting:
        env["NUMBA_THREADING_LAYER"] = setting
    mapped, loaded = _child("-c", SIDE_EFFECTS_SCRIPT, env=env).split()
    if setting:
        assert (mapped, loaded) == ("False", "False")
    elif _tbb_installed() and sys.platform.startswith("linux"):
        assert (mapped, loaded) == ("True", "True")


FORK_LAYER_SCRIPT = textwrap.dedent(
    """
    import os
    import numpy as np
    import numba, numba_affine as na
    from numba_affine import api
    x = np.random.rand(300, 400); W = np.random.rand(400, 50)
    na.affine_forward(x, W)  # the parent starts its threads
    pid = os.fork()
    if pid == 0:
        y = na.affine_forward(x, W)
        ok = np.array_equal(y, na.affine_forward(x, W))
        os._exit(0 if ok and api._in_forked_child == (numba.threading_layer() == "omp") else 3)
    _, status = os.waitpid(pid, 0)
    print(numba.threading_layer(), os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("layer", ["tbb", "omp", "workqueue"])
def test_forked_children_run_serial_only_on_gnu_openmp(layer):
    if layer == "tbb" and not _tbb_installed():
        pytest.skip("the tbb wheel is not installed here")
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    assert _child("-c", FORK_LAYER_SCRIPT, env=env).split() == [layer, "0"]


START_METHOD_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp, sys
    import numpy as np
    import numba_affine as na

    def child(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((300, 400)); W = rng.standard_normal((400, 50))
        return bool(np.allclose(na.affine_forward(x, W), x @ W))

    if __name__ == "__main__":
        child(0)  # the parent has run the parallel kernels
        with mp.get_context(sys.argv[1]).Pool(2) as pool:
            assert all(pool.map(child, range(1, 4)))
        print("ok")
    """
)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_spawn_and_forkserver_run_the_kernels(tmp_path, method):
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    script = tmp_path / "start_method.py"
    script.write_text(START_METHOD_SCRIPT)
    assert _child(script, method).split() == ["ok"]


def test_a_thread_keeps_one_scratch_buffer_per_dtype_of_at_most_64_mib(monkeypatch):
    """The packing scratch is kept per Python thread and dtype for the next
    call, up to tuning.SCRATCH_KEEP_BYTES; a larger one is freed after its call."""
    from numba_affine import tuning

    assert tuning.SCRATCH_KEEP_BYTES == 64 << 20
    kept = api._scratch_local.__dict__
    small = api._scratch(np.dtype(np.float32), 1000)
    assert kept["f"] is small and api._scratch(np.dtype(np.float32), 500) is small  # reused
    monkeypatch.setattr(tuning, "SCRATCH_KEEP_BYTES", 8000)
    big = api._scratch(np.dtype(np.float32), 3000)  # 12 kB: used once, not kept
    assert big.size >= 3000 and kept["f"] is small
    also = api._scratch(np.dtype(np.float64), 1000)  # 8 kB: kept, beside the float32 one
    assert kept["d"] is also and kept["f"] is small
    assert set(kept) <= {"f", "d"}


def test_numba_affine_no_cache_turns_the_cache_off():
    code = (
        "from numba_affine import _jit, kernels; "
        "print(_jit.OVERLOAD_OPTIONS['cache'], type(kernels.product.serial._cache).__name__)"
    )
    env = dict(os.environ, NUMBA_AFFINE_NO_CACHE="1")
    assert _child("-c", code, env=env).split() == ["False", "NullCache"]
    env.pop("NUMBA_AFFINE_NO_CACHE")
    assert _child("-c", code, env=env).split() == ["True", "_DigestCache"]
