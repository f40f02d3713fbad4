"""``python -m numba_affine.bench``: numba-affine against numpy, same process.

For each shape N x D x H and dtype, the forward pass ``np.dot(x, W) + b``
and the backward pass ``np.dot(dY, W.T)``, ``np.dot(x.T, dY)``,
``np.sum(dY, axis=0)`` (the seed's formulas) are timed against
``affine_forward`` and ``affine_backward``. Rounds interleave the two
libraries; each round times a batch of calls; the table reports the median
over rounds and the speed-up t(numpy) / t(numba-affine). Both libraries use
their default thread counts.

Options: ``--shape 512x300x700`` (repeatable) adds shapes, ``--rounds``,
``--dtype``, ``--warmup SECONDS`` (untimed calls before each batch, see
:func:`compare`), ``--plot FILE.png`` (needs matplotlib) draws the
speed-ups per shape. When torch is installed, ``torch.nn.functional.linear`` with autograd
on the CPU is timed too. A last table times a training step at the seed's
size compiled whole (:func:`jitted_sgd_steps`) against the seed's numpy
class in Python (``--no-jitted`` skips it).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

import numba

from ._jit import OVERLOAD_OPTIONS
from .api import affine_backward, affine_forward, warmup
from .layer import Affine

#: The default shapes (N, D, H): the seed's, an MNIST-size hidden layer, a
#: classifier head over a large batch, a square product.
SHAPES: tuple[tuple[int, int, int], ...] = ((20, 50, 10), (100, 784, 100), (2048, 512, 10), (1024, 1024, 1024))

#: The project's speed targets: (N, D, H) -> (forward, backward) minimum
#: speed-ups over numpy. The seed's size has none: there a call from
#: Python is mostly dispatch, in either library.
TARGETS: dict[tuple[int, int, int], tuple[float, float]] = {
    (100, 784, 100): (0.9, 0.9),
    (2048, 512, 10): (1.2, 0.9),
    (1024, 1024, 1024): (0.9, 0.9),
}

#: The small-call table (``python -m numba_affine.bench``'s second table): the
#: seed's size, one sample, two small batches. At these sizes a call
#: from Python is mostly the call itself, in either library.
SMALL_SHAPES: tuple[tuple[int, int, int], ...] = ((20, 50, 10), (1, 784, 100), (8, 64, 32), (32, 128, 10))

#: Speed-up targets of the small table: forward, backward, Affine forward + backward.
SMALL_TARGETS: dict[tuple[int, int, int], tuple[float, float, float | None]] = {
    (20, 50, 10): (1.2, 1.5, 1.3),
    (1, 784, 100): (1.2, 1.2, None),
    (8, 64, 32): (1.2, 1.5, 1.3),
    (32, 128, 10): (1.2, 1.5, 1.3),
}


def numpy_forward(x, W, b):
    """The seed's forward pass."""
    return np.dot(x, W) + b


def numpy_backward(dout, x, W):
    """The seed's backward pass."""
    return np.dot(dout, W.T), np.dot(x.T, dout), np.sum(dout, axis=0)


def make_inputs(N: int, D: int, H: int, dtype, seed: int = 0):
    """Random x (N, D), W (D, H), b (H,), dout (N, H) in ``dtype``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(dtype)
    W = (rng.standard_normal((D, H)) / np.sqrt(max(D, 1))).astype(dtype)
    b = rng.standard_normal(H).astype(dtype)
    dout = rng.standard_normal((N, H)).astype(dtype)
    return x, W, b, dout


def _batch_time(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def _calibrate(fn: Callable[[], object], budget: float, settle: float) -> int:
    """Calls per batch so that one batch takes about ``budget`` seconds."""
    time.sleep(settle)
    fn()
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        fn()
        count += 1
    return max(1, count)


def median_seconds(fn: Callable[[], object], rounds: int = 7, budget: float = 0.03) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` batches of about ``budget`` s."""
    number = _calibrate(fn, budget, settle=0.0)
    return float(np.median([_batch_time(fn, number) for _ in range(rounds)]))


#: Pause between two timed batches. OpenBLAS's idle worker threads keep
#: spinning for about 0.1 s after a numpy call, and OpenMP's for a moment
#: after a parallel kernel; without the pause each library is timed while
#: the other one's threads still compete for the two cores.
SETTLE_SECONDS = 0.15


#: Seconds of calls per timed batch.
BATCH_SECONDS = 0.03


def compare(
    fns: dict[str, Callable[[], object]], rounds: int = 7, settle: float = SETTLE_SECONDS, warmup: float = 0.0
) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds.

    Each batch follows a pause of ``settle`` seconds, then ``warmup`` seconds
    of untimed calls of the same function. The default (no warm-up) times
    the first ~30 ms after the pause, where on this host numba-affine's
    parallel kernels still run at about one thread's speed (README,
    Performance); ``warmup=0.3`` times the steady state of back-to-back
    calls, as in a training loop. Both libraries get the same treatment.
    """
    numbers = {name: _calibrate(fn, BATCH_SECONDS, settle) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(settle)
            t_end = time.perf_counter() + warmup
            while time.perf_counter() < t_end:
                fn()
            times[name].append(_batch_time(fn, numbers[name]))
    return {name: float(np.median(ts)) for name, ts in times.items()}


@dataclass
class Row:
    shape: tuple[int, int, int]
    dtype: str
    t: dict[str, float]

    @property
    def flops(self) -> float:
        N, D, H = self.shape
        return 2.0 * N * D * H

    def speedup(self, which: str, other: str = "numpy") -> float:
        return self.t[f"{other} {which}"] / self.t[f"numba-affine {which}"]

    def gflops(self, lib: str, which: str) -> float:
        work = self.flops * (1 if which == "forward" else 2)
        return work / self.t[f"{lib} {which}"] / 1e9


def _torch_fns(x, W, b, dout):
    try:
        import torch
    except ImportError:
        return {}
    xt = torch.from_numpy(x)
    Wt = torch.from_numpy(np.ascontiguousarray(W.T)).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    dt = torch.from_numpy(dout)

    def fwd():
        with torch.no_grad():
            return torch.nn.functional.linear(xt, Wt, bt)

    xg = xt.clone().requires_grad_(True)
    y = torch.nn.functional.linear(xg, Wt, bt)

    def bwd():
        return torch.autograd.grad(y, (xg, Wt, bt), dt, retain_graph=True)

    return {"torch forward": fwd, "torch backward": bwd}


def measure(shape: tuple[int, int, int], dtype, rounds: int = 7, with_torch: bool = True, warmup: float = 0.0,
            settle: float = SETTLE_SECONDS) -> Row:
    """Time forward and backward of numba-affine and numpy (and torch) on one shape."""
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    fns = {
        "numpy forward": lambda: numpy_forward(x, W, b),
        "numba-affine forward": lambda: affine_forward(x, W, b),
        "numpy backward": lambda: numpy_backward(dout, x, W),
        "numba-affine backward": lambda: affine_backward(dout, x, W),
    }
    if with_torch:
        fns.update(_torch_fns(x, W, b, dout))
    for fn in fns.values():  # compile, fault pages in, warm caches
        fn()
    return Row(shape, np.dtype(dtype).name, compare(fns, rounds, settle=settle, warmup=warmup))


class SeedAffine:
    """The seed notebook's numpy ``Affine`` class (forward, backward; W and b updated by the caller)."""

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


def measure_small(shape: tuple[int, int, int], dtype, rounds: int = 7, settle: float = SETTLE_SECONDS) -> dict[str, float]:
    """Seconds per call at a small size: forward, backward and the layer (forward + backward).

    The layer is :class:`Affine` against the seed notebook's class
    (:class:`SeedAffine`), same arrays.
    """
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    ours, seed = Affine(W, b), SeedAffine(W, b)
    fns = {
        "numpy forward": lambda: numpy_forward(x, W, b),
        "numba-affine forward": lambda: affine_forward(x, W, b),
        "numpy backward": lambda: numpy_backward(dout, x, W),
        "numba-affine backward": lambda: affine_backward(dout, x, W),
        "numpy layer": lambda: (seed.forward(x), seed.backward(dout)),
        "numba-affine layer": lambda: (ours.forward(x), ours.backward(dout)),
    }
    for fn in fns.values():
        fn()
    return compare(fns, rounds, settle=settle)


def format_small(results: Sequence[tuple[tuple[int, int, int], str, dict[str, float]]]) -> str:
    """The small-call table: speed-ups over numpy (and the seed's class), with the targets."""
    head = (f"{'small N x D x H':>18} {'dtype':>7} | {'forward':>8} {'target':>6} | {'backward':>8} {'target':>6} | "
            f"{'Affine':>8} {'target':>6} | numba-affine us: fwd / bwd / Affine")
    lines = [head, "-" * len(head)]
    for shape, dtype, t in results:
        cells = []
        for which, target in zip(("forward", "backward", "layer"), SMALL_TARGETS.get(shape, (None,) * 3)):
            s = t[f"numpy {which}"] / t[f"numba-affine {which}"]
            cells.append(f"{s:7.2f}x " + ("   -  " if target is None else f"{target:4.1f}{'✓' if s >= target else '✗'} "))
        us = " / ".join(f"{t[f'numba-affine {w}'] * 1e6:.2f}" for w in ("forward", "backward", "layer"))
        lines.append(f"{'x'.join(map(str, shape)):>18} {dtype:>7} | " + "| ".join(cells) + f"| {us}")
    lines.append("Affine = forward + backward of the layer against the seed notebook's class, median of interleaved rounds")
    return "\n".join(lines)


def numpy_sgd_step(layer: SeedAffine, x, dout, lr) -> None:
    """One training step of the seed's layer in Python: forward, backward, SGD update of W and b."""
    layer.forward(x)
    layer.backward(dout)
    layer.W -= lr * layer.dW
    layer.b -= lr * layer.db


@numba.njit(**OVERLOAD_OPTIONS)  # as a user's own function would be compiled
def jitted_sgd_steps(x, W, b, dout, lr, steps, y, dx, dW, db):
    """``steps`` of :func:`numpy_sgd_step` in one jitted function, every output given (no allocation)."""
    for _ in range(steps):
        affine_forward(x, W, b, out=y)
        affine_backward(dout, x, W, dx_out=dx, dW_out=dW, db_out=db)
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                W[i, j] -= lr * dW[i, j]
        for j in range(b.shape[0]):
            b[j] -= lr * db[j]


#: Steps per call of :func:`jitted_sgd_steps` when timed: the Python call
#: into it is then a small share of the time per step.
JIT_STEPS = 100


def measure_jitted_step(shape: tuple[int, int, int], dtype, rounds: int = 7, settle: float = SETTLE_SECONDS,
                        steps: int = JIT_STEPS) -> dict[str, float]:
    """Seconds per SGD step: the seed's layer in Python against the jitted step (and steps)."""
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    lr = np.dtype(dtype).type(1e-4)
    layer = SeedAffine(W.copy(), b.copy())
    Wj, bj = W.copy(), b.copy()
    outs = (np.empty((N, H), dtype), np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype))
    fns = {
        "numpy step": lambda: numpy_sgd_step(layer, x, dout, lr),
        "jitted step": lambda: jitted_sgd_steps(x, Wj, bj, dout, lr, 1, *outs),
        "jitted loop": lambda: jitted_sgd_steps(x, Wj, bj, dout, lr, steps, *outs),
    }
    for fn in fns.values():
        fn()
    t = compare(fns, rounds, settle=settle)
    t["jitted loop"] /= steps
    return t


def format_table(rows: Sequence[Row], targets: dict | None = None) -> str:
    """The comparison table as text (speed-ups, GFLOP/s, target check)."""
    targets = TARGETS if targets is None else targets
    has_torch = any("torch forward" in r.t for r in rows)
    head = f"{'shape N x D x H':>18} {'dtype':>7} | {'forward':>8} {'target':>6} {'GFLOP/s':>13} | {'backward':>8} {'target':>6} {'GFLOP/s':>13}"
    if has_torch:
        head += " | vs torch fwd  bwd"
    lines = [head, "-" * len(head)]
    for r in rows:
        tf, tb = targets.get(r.shape, (None, None))
        sf, sb = r.speedup("forward"), r.speedup("backward")

        def mark(s, t):
            return "   -  " if t is None else f"{t:4.1f}{'✓' if s >= t else '✗'} "

        line = (
            f"{'x'.join(map(str, r.shape)):>18} {r.dtype:>7} | {sf:7.2f}x {mark(sf, tf)}"
            f"{r.gflops('numba-affine', 'forward'):6.1f} /{r.gflops('numpy', 'forward'):6.1f} | "
            f"{sb:7.2f}x {mark(sb, tb)}"
            f"{r.gflops('numba-affine', 'backward'):6.1f} /{r.gflops('numpy', 'backward'):6.1f}"
        )
        if has_torch and "torch forward" in r.t:
            line += f" | {r.speedup('forward', 'torch'):8.2f}x {r.speedup('backward', 'torch'):5.2f}x"
        lines.append(line)
    lines.append("speed-up = t(numpy) / t(numba-affine), median of interleaved rounds; "
                 "GFLOP/s = numba-affine / numpy")
    return "\n".join(lines)


def format_jitted(results: Sequence[tuple[str, dict[str, float]]]) -> str:
    """The jitted training step's rows (:func:`measure_jitted_step` results per dtype)."""
    N, D, H = SHAPES[0]
    lines = [f"training step at {N}x{D}x{H} (forward + backward + SGD update of W and b), per step:"]
    for dtype, t in results:
        lines.append(
            f"  {dtype}: numpy layer in Python {t['numpy step'] * 1e6:6.2f} us | jitted, {JIT_STEPS} steps per call "
            f"{t['jitted loop'] * 1e6:5.2f} us ({t['numpy step'] / t['jitted loop']:.2f}x) | "
            f"one jitted call per step {t['jitted step'] * 1e6:5.2f} us ({t['numpy step'] / t['jitted step']:.2f}x)"
        )
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: str, title: str = "") -> None:
    """Bars of the speed-up over numpy (and torch) per shape, forward and backward (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = ["numpy"] + (["torch"] if any("torch forward" in r.t for r in rows) else [])
    dtypes = [d for d in ("float64", "float32") if any(r.dtype == d for r in rows)]
    shapes = list(dict.fromkeys(r.shape for r in rows))
    fig, axes = plt.subplots(len(dtypes), 2, figsize=(11, 3.4 * len(dtypes)), squeeze=False, sharey="row")
    width = 0.8 / len(others)
    for row_axes, dtype in zip(axes, dtypes):
        by_shape = {r.shape: r for r in rows if r.dtype == dtype}
        for ax, which in zip(row_axes, ("forward", "backward")):
            for k, other in enumerate(others):
                xs = [i + (k - (len(others) - 1) / 2) * width for i in range(len(shapes))]
                ys = [by_shape[s].speedup(which, other) if s in by_shape and f"{other} {which}" in by_shape[s].t
                      else float("nan") for s in shapes]
                bars = ax.bar(xs, ys, width, label=f"over {other}", color=f"C{k}")
                ax.bar_label(bars, fmt="%.2fx", fontsize=7, padding=1)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xticks(range(len(shapes)), ["x".join(map(str, s)) for s in shapes], fontsize=8)
            ax.set_title(f"{which}, {dtype}", fontsize=10)
            ax.set_ylabel("speed-up (higher is faster)")
            ax.grid(True, axis="y", alpha=0.3)
            ax.margins(y=0.2)
            ax.legend(fontsize=8, loc="best")
            ax.set_xlabel("N x D x H")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def environment() -> str:
    """One line naming what the table ran on: versions, build, threading layer, threads."""
    import numba

    from ._simd import VECTOR_BYTES

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        layer = "not started"
    build = "AVX-512" if VECTOR_BYTES == 64 else "AVX2"
    return (f"numpy {np.__version__}, numba {numba.__version__} ({build} build for {numba.config.CPU_NAME or 'this host'}, "
            f"{layer} threading layer, {numba.get_num_threads()} threads)")


def _without_avx512(features: str) -> str:
    return ",".join(
        "-" + f[1:] if f[1:].startswith(("avx512", "avx10", "amx", "evex512")) else f for f in features.split(",")
    )


def avx2_environment() -> dict[str, str]:
    """Environment variables that build the AVX2 kernels on any x86-64 host.

    Numba compiles for an AVX2 + FMA CPU (``NUMBA_CPU_NAME`` /
    ``NUMBA_CPU_FEATURES``: this host's features with every AVX-512 one
    off; Numba's cache is keyed by them, so the two builds never mix), and
    numpy's OpenBLAS uses its Haswell kernels, as it would on such a CPU.
    """
    from numba.core.codegen import get_host_cpu_features

    return {
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": _without_avx512(get_host_cpu_features()),
        "OPENBLAS_CORETYPE": "Haswell",
    }


def _run_avx2_build(argv: Sequence[str]) -> int:
    """Run this command again, without ``--isa``, in a child that builds the AVX2 kernels."""
    import os
    import subprocess

    rest = [a for a in argv if not a.startswith("--isa")]
    if "--isa" in argv:
        i = argv.index("--isa")
        rest = list(argv[:i]) + list(argv[i + 2 :])
    env = dict(os.environ, **avx2_environment())
    return subprocess.call([sys.executable, "-m", "numba_affine.bench", *rest], env=env)


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        N, D, H = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 512x300x700, got {text!r}") from None
    if min(N, D, H) < 1:
        raise argparse.ArgumentTypeError(f"shape sizes must be positive, got {text!r}")
    return N, D, H


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numba_affine.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=_parse_shape, action="append", default=[],
                        help="extra shape NxDxH (repeatable)")
    parser.add_argument("--only", action="store_true", help="time only the --shape shapes")
    parser.add_argument("--dtype", choices=("float32", "float64"), action="append", default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS",
                        help="untimed calls before each timed batch (0.3: steady state)")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the speed-ups per shape (needs matplotlib)")
    parser.add_argument("--no-small", action="store_true", help="skip the small-call table (seed size, one sample)")
    parser.add_argument("--no-jitted", action="store_true",
                        help="skip the jitted training step row (its first run compiles it, a few seconds)")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: time the AVX2 build (on an AVX-512 host: compiled in a child process, "
                             "numpy on OpenBLAS's Haswell kernels)")
    args = parser.parse_args(argv)
    if args.isa == "avx2":
        from ._simd import VECTOR_BYTES

        if VECTOR_BYTES == 64:
            return _run_avx2_build(list(sys.argv[1:] if argv is None else argv))
    shapes = ([] if args.only else list(SHAPES)) + args.shape
    dtypes = args.dtype or ["float64", "float32"]
    warmup([np.dtype(d) for d in dtypes])
    rows = []
    total = len(shapes) * len(dtypes)
    for i, (dtype, shape) in enumerate(((d, s) for d in dtypes for s in shapes), 1):
        print(f"[{i}/{total}] {dtype} {'x'.join(map(str, shape))} ...", file=sys.stderr, flush=True)
        rows.append(measure(shape, dtype, args.rounds, with_torch=not args.no_torch, warmup=args.warmup))
    print(format_table(rows))
    if not (args.no_small or args.only):
        small = []
        for dtype in dtypes:
            for shape in SMALL_SHAPES:
                print(f"[small] {dtype} {'x'.join(map(str, shape))} ...", file=sys.stderr, flush=True)
                small.append((shape, np.dtype(dtype).name, measure_small(shape, dtype, args.rounds)))
        print(format_small(small))
    if not args.no_jitted:
        print(format_jitted([(d, measure_jitted_step(SHAPES[0], d, args.rounds)) for d in dtypes]))
    where = environment()
    print(where)
    if args.plot:
        plot(rows, args.plot, title=where)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
