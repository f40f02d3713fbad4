"""Dependable under threads, forks, repeated calls, random inputs and a
shared or unwritable compile cache."""

import os
import subprocess
import sys
import textwrap
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
    proc = subprocess.run([sys.executable, "-c", LAYER_SCRIPT], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    layer, library = proc.stdout.split()
    if setting:
        assert layer == setting
    elif _tbb_installed():  # a default dependency on x86-64 Linux; Numba finds it through _jit
        assert layer == "tbb" and library.endswith("libtbb.so.12")
    else:
        assert layer == "omp" and library == "None"


def test_a_forked_child_uses_the_serial_kernels(monkeypatch):
    chosen = []
    real_plan = api.kernels.plan

    def spy(*args):
        plan = real_plan(*args)
        chosen.append(plan.parallel)
        return plan

    monkeypatch.setattr(api.kernels, "plan", spy)
    x, W, b, _ = make_inputs(300, 400, 50, np.float64)
    monkeypatch.setattr(api, "_in_forked_child", True)
    y = na.affine_forward(x, W, b)
    monkeypatch.setattr(api, "_in_forked_child", False)
    np.testing.assert_array_equal(na.affine_forward(x, W, b), y)
    assert chosen == [False, numba.get_num_threads() > 1]


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_calls_do_not_leak():
    x, W, b, dout = make_inputs(20, 50, 10, np.float64)
    xl, Wl, bl, doutl = make_inputs(64, 300, 40, np.float32)
    for _ in range(200):
        na.affine_forward(x, W, b)
        na.affine_backward(dout, x, W)
        na.affine_forward(xl, Wl, bl)
        na.affine_backward(doutl, xl, Wl)
    before = _rss_bytes()
    for i in range(20_000):
        if i % 2:
            na.affine_forward(x, W, b)
            na.affine_backward(dout, x, W)
        else:
            na.affine_forward(xl, Wl, bl)
            na.affine_backward(doutl, xl, Wl)
    grown = _rss_bytes() - before
    assert grown < 20 * 2**20, f"memory grew by {grown / 2**20:.1f} MiB"


# ------------------------------------------------------------- random inputs

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
        else:
            dout = dout.astype(other)
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


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls())
def test_random_calls_give_the_reference_or_a_clean_error(call):
    broken, x, W, b, dout = call
    snapshot = [a.copy() for a in (x, W, b, dout)]
    if broken == "none":
        dtype = x.dtype
        N, D = x.shape
        H = W.shape[1]
        assert_matches(na.affine_forward(x, W, b), forward(*f64(x, W, b)), dtype, D)
        for got, want, k in zip(na.affine_backward(dout, x, W), backward(*f64(dout, x, W)), (H, N, N)):
            assert_matches(got, want, dtype, k)
    else:
        with pytest.raises((TypeError, ValueError)):
            na.affine_forward(x, W, b)
            na.affine_backward(dout, x, W)
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
    hits = sum(sum(k.stats.cache_hits.values()) for k in (kernels.product.serial, kernels.column_sums))
    misses = sum(sum(k.stats.cache_misses.values()) for k in (kernels.product.serial, kernels.column_sums))
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


def test_unwritable_cache_dir_does_not_break_import(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "cache"))
    proc = subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[0] == "ok"


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
