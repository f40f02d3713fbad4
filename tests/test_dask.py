"""numba_affine.dask: row-chunked dask arrays, on every scheduler.

Needs the ``dask`` extra (dask, distributed); CI installs it.
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="numba_affine.dask needs: pip install '.[dask]'")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed", reason="numba_affine.dask needs: pip install '.[dask]'")

from reference import DTYPES, assert_matches, backward, forward, make_inputs  # noqa: E402

import numba_affine as na  # noqa: E402
from numba_affine import dask as nd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """A loopback-only cluster of 2 single-threaded worker processes (Numba: 1 thread per task)."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None, processes=True, silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def chunked(a, rows):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, rows", [((1, 1, 1), 1), ((20, 50, 10), 7), ((97, 13, 5), 10), ((300, 64, 33), 128)])
def test_matches_numpy_and_the_in_memory_calls(shape, rows, dtype):
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    X, dY = chunked(x, rows), chunked(dout, rows)
    y = nd.affine_forward(X, W, b)
    assert isinstance(y, da.Array) and y.chunks == (X.chunks[0], (H,)) and y.dtype == dtype
    y = y.compute(scheduler="sync")
    np.testing.assert_array_equal(y, na.affine_forward(x, W, b))  # per row: chunking does not matter
    assert_matches(y, forward(x, W, b), dtype, D)
    np.testing.assert_array_equal(nd.affine_forward(X, W).compute(scheduler="sync"), na.affine_forward(x, W))
    dX, dW, db = nd.affine_backward(dY, X, W)
    assert dX.chunks == X.chunks
    got = dask.compute(dX, dW, db, scheduler="sync")
    np.testing.assert_array_equal(got[0], na.affine_dx(dout, W))
    for g, want, k in zip(got, backward(dout, x, W), (H, N, N)):
        assert_matches(g, want, dtype, k)
    if len(X.chunks[0]) == 1:  # one chunk: exactly the in-memory call
        np.testing.assert_array_equal(got[1], na.affine_dw(x, dout))
        np.testing.assert_array_equal(got[2], na.affine_db(dout))


def test_nd_input_and_non_contiguous_blocks():
    x, W, b, dout = make_inputs(40, 12, 5, np.float64)
    x3 = x.reshape(40, 3, 4)
    X3 = chunked(x3, 9)
    np.testing.assert_array_equal(nd.affine_forward(X3, W, b).compute(scheduler="sync"), na.affine_forward(x3, W, b))
    dX, dW, db = dask.compute(*nd.affine_backward(chunked(dout, 9), X3, W), scheduler="sync")
    assert dX.shape == x3.shape
    np.testing.assert_array_equal(dX, na.affine_dx(dout, W).reshape(x3.shape))
    assert_matches(dW, np.dot(x.T, dout), np.float64, 40)
    wide = make_inputs(40, 24, 5, np.float64)[0]
    Xs = chunked(wide, 9)[:, ::2]  # blocks are strided views
    np.testing.assert_array_equal(nd.affine_forward(Xs, W, b).compute(scheduler="sync"),
                                  na.affine_forward(wide[:, ::2], W, b))


def test_forward_does_not_depend_on_the_chunking():
    x, W, b, _ = make_inputs(1000, 77, 19, np.float32)
    want = na.affine_forward(x, W, b)
    for rows in (1000, 333, 64, 1):
        np.testing.assert_array_equal(nd.affine_forward(chunked(x, rows), W, b).compute(scheduler="threads"), want)


def results(X, dY, W, b, **compute):
    y = nd.affine_forward(X, W, b)
    return dask.compute(y, *nd.affine_backward(dY, X, W), **compute)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_on_every_scheduler(client, dtype):
    x, W, b, dout = make_inputs(2000, 100, 10, dtype)
    X, dY = chunked(x, 61), chunked(dout, 61)  # 33 chunks: a reduction tree of three levels
    want = results(X, dY, W, b, scheduler="sync")
    runs = {
        "threads, 1": dict(scheduler="threads", num_workers=1),
        "threads, 2": dict(scheduler="threads", num_workers=2),
        "processes, 2": dict(scheduler="processes", num_workers=2),
        "distributed, 2 workers": dict(scheduler=client),
    }
    for what, kwargs in runs.items():
        got = results(X, dY, W, b, **kwargs)
        for name, g, w in zip(("y", "dx", "dW", "db"), got, want):
            assert np.array_equal(g, w), f"{name} differs on {what}"


def test_more_numba_threads_per_task_give_the_same_bits():
    x, W, b, dout = make_inputs(3000, 300, 40, np.float64)  # large enough for the parallel kernels
    X, dY = chunked(x, 1500), chunked(dout, 1500)
    one = results(X, dY, W, b, scheduler="sync")
    two = dask.compute(nd.affine_forward(X, W, b, numba_threads=2),
                       *nd.affine_backward(dY, X, W, numba_threads=2), scheduler="sync")
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)


def test_split_every_changes_the_tree_not_the_tolerance():
    x, W, _, dout = make_inputs(500, 20, 7, np.float64)
    X, dY = chunked(x, 10), chunked(dout, 10)
    for k in (2, 3, 50):
        _, dW, db = dask.compute(*nd.affine_backward(dY, X, W, split_every=k), scheduler="sync")
        assert_matches(dW, np.dot(x.T, dout), np.float64, 500)
        assert_matches(db, dout.sum(0), np.float64, 500)


# ----------------------------------------------------------------------------- checks, before any task


@pytest.fixture
def no_tasks(monkeypatch):
    """Fail if any task runs."""
    def boom(*args, **kwargs):
        raise AssertionError("a task ran")

    for name in ("_forward_block", "_dx_block", "_dw_block", "_db_block"):
        monkeypatch.setattr(nd, name, boom)


def test_wrong_types_and_dtypes(no_tasks):
    x, W, b, dout = make_inputs(8, 5, 3, np.float64)
    X = chunked(x, 4)
    with pytest.raises(TypeError, match="X must be a dask.array.Array.*from_array"):
        nd.affine_forward(x, W, b)
    with pytest.raises(TypeError, match="W must be a numpy.ndarray.*compute"):
        nd.affine_forward(X, da.from_array(W), b)
    with pytest.raises(TypeError, match="X has dtype int64"):
        nd.affine_forward(X.astype(np.int64), W, b)
    with pytest.raises(TypeError, match="X has dtype float64 but W has dtype float32"):
        nd.affine_forward(X, W.astype(np.float32))
    with pytest.raises(TypeError, match="W has dtype float64 but b has dtype float32"):
        nd.affine_forward(X, W, b.astype(np.float32))
    with pytest.raises(TypeError, match="dY has dtype float32 but X has dtype float64"):
        nd.affine_backward(chunked(dout, 4).astype(np.float32), X, W)


def test_wrong_shapes_name_them(no_tasks):
    x, W, b, dout = make_inputs(8, 5, 3, np.float64)
    X, dY = chunked(x, 4), chunked(dout, 4)
    with pytest.raises(ValueError, match=r"X has shape \(8, 5\) but W has shape \(4, 3\)"):
        nd.affine_forward(X, W[:4])
    with pytest.raises(ValueError, match=r"b has shape \(2,\) but W has shape \(5, 3\)"):
        nd.affine_forward(X, W, b[:2])
    with pytest.raises(ValueError, match=r"dY has shape \(8, 2\) but X has shape \(8, 5\)"):
        nd.affine_backward(dY[:, :2], X, W)
    with pytest.raises(ValueError, match=r"dY's row chunks \(3, 3, 2\) differ from X's \(4, 4\).*rechunk"):
        nd.affine_backward(dY.rechunk((3, 3)), X, W)
    with pytest.raises(ValueError, match="rows first"):
        nd.affine_forward(chunked(x[0], 5), W)
    with pytest.raises(ValueError, match="split_every"):
        nd.affine_backward(dY, X, W, split_every=1)


def test_shape_errors_are_the_library_s_own(no_tasks):
    """Dask runs the checks every door runs (``_checks``): the same error
    class and message as ``numba_affine.affine_*``, with Dask's names X and dY."""
    import pickle

    from numba_affine._checks import ShapeError

    x, W, b, dout = make_inputs(8, 6, 3, np.float64)
    X3 = chunked(x, 4).reshape(8, 2, 3)
    with pytest.raises(ShapeError) as dask_error:
        nd.affine_forward(X3, W[:4])
    with pytest.raises(ShapeError) as numpy_error:
        na.affine_forward(x.reshape(8, 2, 3), W[:4])
    assert str(dask_error.value) == str(numpy_error.value).replace("x", "X")
    assert "flattened to (8, 6)" in str(dask_error.value)
    copy = pickle.loads(pickle.dumps(dask_error.value))  # as a worker would send it
    assert type(copy) is ShapeError and str(copy) == str(dask_error.value)
    with pytest.raises(ShapeError, match=r"dY has shape \(8, 2\) but X has shape \(8, 2, 3\) .* expected dY of shape \(8, 3\)"):
        nd.affine_backward(chunked(dout, 4)[:, :2], X3, W)


def test_chunking_along_the_features_is_refused_with_the_fix(no_tasks, monkeypatch):
    x, W, b, dout = make_inputs(8, 6, 3, np.float64)
    X = da.from_array(x, chunks=(4, 3))
    with pytest.raises(ValueError) as info:
        nd.affine_forward(X, W, b)
    msg = str(info.value)
    assert "chunked along axis 1 (chunks (3, 3))" in msg and "X.rechunk({1: -1})" in msg
    fixed = X.rechunk({1: -1})
    monkeypatch.undo()  # tasks may run from here on
    np.testing.assert_array_equal(nd.affine_forward(fixed, W, b).compute(scheduler="sync"), na.affine_forward(x, W, b))
    monkeypatch.setattr(nd, "_forward_block", None)  # and no task of what follows runs
    with pytest.raises(ValueError, match=r"dY.rechunk\(\{1: -1\}\)"):
        nd.affine_backward(da.from_array(dout, chunks=(4, 2)), fixed, W)
    with pytest.raises(ValueError, match=r"X.rechunk\(\{1: -1, 2: -1\}\)"):
        nd.affine_forward(da.from_array(x.reshape(8, 2, 3), chunks=(4, 2, 1)), W)


def test_unknown_chunk_sizes(no_tasks):
    x, W, _, _ = make_inputs(8, 5, 3, np.float64)
    X = chunked(x, 4)
    unknown = X[X[:, 0] > 0]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        nd.affine_forward(unknown, W)


def test_parameters_enter_the_graph_once():
    import cloudpickle

    x, W, b, dout = make_inputs(1000, 300, 100, np.float64)  # W: 240 kB
    X, dY = chunked(x, 10), chunked(dout, 10)  # 100 tasks per operation
    for result in (nd.affine_forward(X, W, b), nd.affine_backward(dY, X, W)[0]):
        graph = dict(result.__dask_graph__())
        own = {k: v for k, v in graph.items() if "numba-affine" in str(k)}
        assert len(own) >= 100
        holding_W = [k for k, task in own.items() if len(cloudpickle.dumps(task)) > W.nbytes // 2]
        assert len(holding_W) <= 1  # distributed ships each task alone: W in one key, not in every task


def test_readme_dask_example_runs_and_matches_numpy():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("## Scale out with Dask")[1].split("```python\n")[1].split("```")[0]
    space = {}
    exec(code, space)
    x = space["X"].compute()
    assert_matches(space["dW"], np.dot(x.T.astype(np.float64), np.ones((len(x), 10))), np.float32, len(x))
    np.testing.assert_array_equal(space["db"], np.full(10, len(x), np.float32))


def test_dask_scoring_example_runs():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "dask_scoring.py"
    proc = subprocess.run([sys.executable, str(script), "--rows", "200000", "--chunk-rows", "50000",
                           "--stream-gib", "0.2", "--memory-limit", "512MiB", "--rounds", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "class counts equal: True" in proc.stdout
    peaks = [float(ln.split(": ")[1].split()[0]) for ln in proc.stdout.splitlines() if "peak memory of worker" in ln]
    assert len(peaks) == 2 and all(0 < p < 512 for p in peaks)
