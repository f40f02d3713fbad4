"""asv benchmarks: numba-affine's kernels next to the seed's numpy formulas.

Every ``time_*`` of numba-affine has a numpy twin in the same class
(``time_numpy_*``), on the same inputs, so the dashboard shows both lines
and machine noise shows up in both. JIT compilation happens in ``setup``
(each benchmark runs in a fresh process), with the same dtypes and layouts
as the timed call.
"""

from __future__ import annotations

import numpy as np

from .common import DTYPES, SHAPES, SMALL_SHAPES, SeedNumpyAffine, compare, flops, inputs, numpy_backward, numpy_forward, require

LABELS = list(SHAPES)
#: The per-call classes time the sizes where one call takes a millisecond or
#: more; the seed's size lives in ``Small`` (batched samples) and ``Throughput``.
LARGE_LABELS = [label for label in SHAPES if label not in SMALL_SHAPES]


class _Shaped:
    params = (LABELS, DTYPES)
    param_names = ["shape", "dtype"]
    timeout = 600  # the first process of a fresh environment compiles the kernels
    # 0.2 s of untimed calls, then 5-10 samples per process, 2 processes:
    # finite confidence intervals. asv_runner >= 0.3 times one call per
    # sample when a benchmark has a setup (asv#966), so no sample_time here.
    warmup_time = 0.2
    repeat = (5, 10, 10.0)
    rounds = 2

    def setup(self, label, dtype):
        self.x, self.W, self.b, self.dout = inputs(label, dtype)


class _Large(_Shaped):
    params = (LARGE_LABELS, DTYPES)


class Forward(_Large):
    """``y = x.W + b``: affine_forward against ``np.dot(x, W) + b``."""

    def setup(self, label, dtype):
        super().setup(label, dtype)
        self.affine_forward = require("affine_forward")
        self.affine_forward(self.x, self.W, self.b)

    def time_affine_forward(self, label, dtype):
        self.affine_forward(self.x, self.W, self.b)

    def time_numpy_forward(self, label, dtype):
        numpy_forward(self.x, self.W, self.b)


class Backward(_Large):
    """dx, dW and db in one call against the seed's three numpy lines."""

    def setup(self, label, dtype):
        super().setup(label, dtype)
        self.affine_backward = require("affine_backward")
        self.affine_backward(self.dout, self.x, self.W)

    def time_affine_backward(self, label, dtype):
        self.affine_backward(self.dout, self.x, self.W)

    def time_numpy_backward(self, label, dtype):
        numpy_backward(self.dout, self.x, self.W)


class Gradients(_Large):
    """Each gradient alone: affine_dx / affine_dw / affine_db against numpy."""

    def setup(self, label, dtype):
        super().setup(label, dtype)
        self.dx, self.dw, self.db = require("affine_dx", "affine_dw", "affine_db")
        self.dx(self.dout, self.W)
        self.dw(self.x, self.dout)
        self.db(self.dout)

    def time_affine_dx(self, label, dtype):
        self.dx(self.dout, self.W)

    def time_numpy_dx(self, label, dtype):
        np.dot(self.dout, self.W.T)

    def time_affine_dw(self, label, dtype):
        self.dw(self.x, self.dout)

    def time_numpy_dw(self, label, dtype):
        np.dot(self.x.T, self.dout)

    def time_affine_db(self, label, dtype):
        self.db(self.dout)

    def time_numpy_db(self, label, dtype):
        np.sum(self.dout, axis=0)


class LayerStep(_Large):
    """One training step of the layer: ``Affine.forward`` + ``Affine.backward``."""

    def setup(self, label, dtype):
        super().setup(label, dtype)
        Affine = require("Affine")
        self.layer = Affine(self.W, self.b)
        self.seed_layer = SeedNumpyAffine(self.W, self.b)
        self.time_affine_step(label, dtype)

    def time_affine_step(self, label, dtype):
        self.layer.forward(self.x)
        self.layer.backward(self.dout)

    def time_numpy_seed_layer_step(self, label, dtype):
        self.seed_layer.forward(self.x)
        self.seed_layer.backward(self.dout)


class Small:
    """The small-call table of ``python -m numba_affine.bench``: calls of 0.5-30 µs, the seed's
    20x50x10 among them. No ``setup`` (asv_runner times one call per sample when a benchmark has
    one, asv#966): the inputs are made when asv loads the class and the untimed calls of
    ``warmup_time`` compile. Each sample is ``number`` calls: 0.2-20 ms. (A calibrated number would
    stop at 1 when the first call, which compiles, outlasts ``warmup_time``.)"""

    params = (list(SMALL_SHAPES), DTYPES)
    param_names = ["shape", "dtype"]
    timeout = 600
    warmup_time = 0.3
    number = 500
    repeat = (5, 10, 4.0)
    rounds = 1  # 5-10 batched samples per value: finite confidence intervals in one process

    def __init__(self):
        self.data = {(label, dtype): inputs(label, dtype, SMALL_SHAPES) for label in SMALL_SHAPES for dtype in DTYPES}
        self.seed_layers = {key: SeedNumpyAffine(W, b) for key, (x, W, b, dout) in self.data.items()}
        try:
            lib = require("affine_forward", "affine_backward", "affine_dx", "affine_dw", "affine_db", "Affine")
        except NotImplementedError:  # an old commit: its calls fail, the other classes still load
            return
        self.forward, self.backward, self.dx, self.dw, self.db, Affine = lib
        self.layers = {key: Affine(W, b) for key, (x, W, b, dout) in self.data.items()}

    def time_affine_forward(self, label, dtype):
        x, W, b, _ = self.data[label, dtype]
        self.forward(x, W, b)

    def time_numpy_forward(self, label, dtype):
        x, W, b, _ = self.data[label, dtype]
        numpy_forward(x, W, b)

    def time_affine_backward(self, label, dtype):
        x, W, _, dout = self.data[label, dtype]
        self.backward(dout, x, W)

    def time_numpy_backward(self, label, dtype):
        x, W, _, dout = self.data[label, dtype]
        numpy_backward(dout, x, W)

    def time_affine_dx(self, label, dtype):
        _, W, _, dout = self.data[label, dtype]
        self.dx(dout, W)

    def time_numpy_dx(self, label, dtype):
        _, W, _, dout = self.data[label, dtype]
        np.dot(dout, W.T)

    def time_affine_dw(self, label, dtype):
        x, _, _, dout = self.data[label, dtype]
        self.dw(x, dout)

    def time_numpy_dw(self, label, dtype):
        x, _, _, dout = self.data[label, dtype]
        np.dot(x.T, dout)

    def time_affine_db(self, label, dtype):
        dout = self.data[label, dtype][3]
        self.db(dout)

    def time_numpy_db(self, label, dtype):
        dout = self.data[label, dtype][3]
        np.sum(dout, axis=0)

    def time_affine_step(self, label, dtype):
        layer = self.layers[label, dtype]
        x, _, _, dout = self.data[label, dtype]
        layer.forward(x)
        layer.backward(dout)

    def time_numpy_seed_layer_step(self, label, dtype):
        layer = self.seed_layers[label, dtype]
        x, _, _, dout = self.data[label, dtype]
        layer.forward(x)
        layer.backward(dout)


class Throughput(_Shaped):
    """Derived figures: GFLOP/s, and the speed-up over numpy measured in the
    same process by ``python -m numba_affine.bench``'s method
    (:func:`common.compare`: interleaved ~30 ms batches after 0.15 s pauses,
    median of 7 rounds)."""

    unit = "GFLOP/s"
    rounds = 1  # each value is already a median over rounds

    def setup(self, label, dtype):
        super().setup(label, dtype)
        fwd, bwd = require("affine_forward", "affine_backward")
        x, W, b, dout = self.x, self.W, self.b, self.dout
        self.ours = {"forward": lambda: fwd(x, W, b), "backward": lambda: bwd(dout, x, W)}
        self.numpy = {"forward": lambda: numpy_forward(x, W, b), "backward": lambda: numpy_backward(dout, x, W)}
        self.work = {"forward": flops(SHAPES[label]), "backward": 2 * flops(SHAPES[label])}

    def _speedup(self, which):
        t = compare({"numpy": self.numpy[which], "ours": self.ours[which]})
        return t["numpy"] / t["ours"]

    def track_gflops_forward(self, label, dtype):
        return self.work["forward"] / compare({"ours": self.ours["forward"]})["ours"] / 1e9

    def track_gflops_backward(self, label, dtype):
        return self.work["backward"] / compare({"ours": self.ours["backward"]})["ours"] / 1e9

    def track_speedup_forward(self, label, dtype):
        return self._speedup("forward")

    track_speedup_forward.unit = "x numpy"

    def track_speedup_backward(self, label, dtype):
        return self._speedup("backward")

    track_speedup_backward.unit = "x numpy"


def _jitted_step_tools():
    """numba_affine.bench's jitted step, or NotImplementedError (asv skips commits before it)."""
    try:
        from numba_affine import bench
    except ImportError as exc:  # pragma: no cover
        raise NotImplementedError(str(exc)) from exc
    if not hasattr(bench, "jitted_sgd_steps"):
        raise NotImplementedError("numba_affine.bench.jitted_sgd_steps does not exist at this commit")
    return bench


class JittedStep:
    """A training step (forward, backward, SGD update of W and b) at the seed's size, compiled whole:
    ``JIT_STEPS`` steps in one jitted function against as many steps of the seed's numpy class in Python."""

    params = (DTYPES,)
    param_names = ["dtype"]
    timeout = 600
    warmup_time = 0.2
    repeat = (5, 10, 10.0)

    def setup(self, dtype):
        self.bench = _jitted_step_tools()
        x, W, b, dout = inputs("seed 20x50x10", dtype)
        N, D = x.shape
        H = W.shape[1]
        self.steps = self.bench.JIT_STEPS
        lr = np.dtype(dtype).type(1e-4)
        outs = (np.empty((N, H), dtype), np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype))
        layer = self.bench.SeedAffine(W.copy(), b.copy())
        Wj, bj = W.copy(), b.copy()
        self.jitted = lambda: self.bench.jitted_sgd_steps(x, Wj, bj, dout, lr, self.steps, *outs)
        self.numpy_step = lambda: self.bench.numpy_sgd_step(layer, x, dout, lr)
        self.jitted()

    def time_jitted_steps(self, dtype):
        self.jitted()

    def time_numpy_seed_layer_steps(self, dtype):
        for _ in range(self.steps):
            self.numpy_step()

    def track_speedup_jitted_step(self, dtype):
        t = self.bench.measure_jitted_step((20, 50, 10), dtype, rounds=5)
        return t["numpy step"] / t["jitted loop"]

    track_speedup_jitted_step.unit = "x numpy"
