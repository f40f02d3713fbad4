"""Re-measure every tuned constant of ``numba_affine.tuning`` on this machine.

    python benchmarks/tune.py [--rounds 5] [--dtype float64] [--only NAME]

For each constant it times a forward + backward step at the shapes the
constant affects, once per candidate value (the module's value patched
in, the plan cache cleared), and prints the time of each candidate
relative to the current value (below 1.00: the candidate is faster). For
``PARALLEL_MIN_WORK`` it sweeps the work size N*D*H and times the serial
twin against the parallel one: the threshold belongs where the parallel
twin starts to win. The output is the Markdown of ``docs/tuning.md``.

Serial calls plan themselves inside the kernel with the values it was
compiled with, so a candidate acts on the parallel calls only.

Every candidate gives the same results (a plan only changes who computes
an element and where it reads it from): only speed is at stake. The
timing method is the bench's: interleaved rounds, each batch after a
pause, median of rounds (``numba_affine.bench.compare``).

This is a script, not an asv benchmark (asv imports this module and finds
nothing to run).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

#: constant -> (candidates, shapes (N, D, H) it decides on, what it decides)
CANDIDATES = {
    "PANEL_BYTES": ((8 << 10, 16 << 10, 32 << 10, 64 << 10), [(100, 784, 100), (1024, 1024, 1024)],
                    "block of k (panel of B in L1)"),
    "MC_MAX": ((48, 72, 120, 240), [(2048, 512, 10), (1024, 1024, 1024)], "rows per block of A, at most"),
    "MIN_TASK_ROWS": ((12, 24, 48, 96), [(100, 784, 100), (300, 784, 100)], "rows per parallel task, at least"),
    "B_BLOCK_BYTES": ((256 << 10, 1 << 20, 4 << 20, 16 << 20), [(1024, 1024, 1024), (256, 1024, 1024)],
                      "a task's packed block of B, at most"),
    "TASKS_PER_THREAD": ((1, 2, 4, 8), [(100, 784, 100), (1024, 1024, 1024)], "tasks per thread (load balance)"),
    "PACK_B_MIN_ROW_BYTES": ((1024, 4096, 1 << 30), [(300, 784, 256), (1024, 1024, 1024)],
                             "pack W when its rows are this far apart"),
    "PACK_B_MIN_ROWS": ((12, 48, 192), [(64, 1024, 1024), (200, 784, 1024)], "pack W when this many rows reuse it"),
    "PACK_A_MIN_PANELS": ((1, 4, 16, 64, 1 << 30), [(100, 784, 100), (2048, 512, 10), (1024, 1024, 1024)],
                          "pack dW's x.T when this many panels reuse it"),
}

#: PARALLEL_MIN_WORK's sweep: (N, D, H) of growing N*D*H
SWEEP = [(20, 50, 10), (8, 100, 100), (16, 100, 100), (32, 100, 100), (64, 100, 100), (40, 100, 200),
         (100, 100, 100), (64, 128, 128), (100, 200, 100), (128, 256, 64), (100, 300, 100), (100, 400, 100),
         (100, 512, 100), (128, 512, 96), (100, 784, 100), (200, 784, 100)]


def step_fn(shape, dtype):
    from numba_affine import affine_backward, affine_forward
    from numba_affine.bench import make_inputs

    x, W, b, dout = make_inputs(*shape, dtype)

    def step():
        affine_forward(x, W, b)
        affine_backward(dout, x, W)

    return step


def measure_candidates(name, values, shapes, dtype, rounds):
    """{shape: {value: seconds}}: a forward + backward step with ``tuning.<name>`` set to each value."""
    from numba_affine import kernels, tuning
    from numba_affine.bench import compare

    current = getattr(tuning, name)

    def with_value(v, step):
        def run():
            if getattr(tuning, name) != v:  # once per batch: plans are cached again within it
                setattr(tuning, name, v)
                kernels.clear_plans()
            step()
        return run

    out = {}
    try:
        for shape in shapes:
            step = step_fn(shape, dtype)
            fns = {v: with_value(v, step) for v in values}
            for fn in fns.values():
                fn()
            out[shape] = compare(fns, rounds, settle=0.05)
    finally:
        setattr(tuning, name, current)
        kernels.clear_plans()
    return out


#: PARALLEL_MIN_WORK values that force the serial and the parallel twin
SERIAL, PARALLEL = 1 << 62, 0


def fmt_shape(s):
    return "x".join(map(str, s))


def fmt_value(v):
    if v >= 1 << 30:
        return "off"
    return f"{v >> 10} KiB" if v >= 1024 and v % 1024 == 0 else str(v)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", action="append", choices=("float32", "float64"), default=None)
    parser.add_argument("--only", action="append", default=None, help="tune only this constant (repeatable)")
    args = parser.parse_args(argv)

    import numba

    import numba_affine
    from numba_affine import tuning
    from numba_affine.config import config

    out = sys.stdout
    dtypes = args.dtype or ["float64", "float32"]
    numba_affine.warmup([np.dtype(d) for d in dtypes])
    facts = config()
    print(f"{facts['cpu']}, {facts['vector width']}, {facts['threading layer']}, numpy {facts['numpy']}, numba {facts['numba']}", file=out)
    names = args.only or ["PARALLEL_MIN_WORK", *CANDIDATES]
    t_start = time.perf_counter()
    for dtype in dtypes:
        print(f"\n## {dtype}\n", file=out)
        if "PARALLEL_MIN_WORK" in names:
            res = measure_candidates("PARALLEL_MIN_WORK", (SERIAL, PARALLEL), SWEEP, dtype, args.rounds)
            print(f"PARALLEL_MIN_WORK = {tuning.PARALLEL_MIN_WORK:,}: forward + backward step, "
                  f"serial twin against parallel ({numba.get_num_threads()} threads)\n", file=out)
            print("| N x D x H | N*D*H | serial µs | parallel µs | parallel / serial |", file=out)
            print("|---|---|---|---|---|", file=out)
            first_win = None
            for shape, t in res.items():
                ts, tp = t[SERIAL], t[PARALLEL]
                work = shape[0] * shape[1] * shape[2]
                if tp < ts and first_win is None:
                    first_win = work
                print(f"| {fmt_shape(shape)} | {work:,} | {ts * 1e6:.1f} | {tp * 1e6:.1f} | {tp / ts:.2f} |", file=out)
            print(f"\nthe parallel twin first wins at N*D*H = {first_win:,}\n" if first_win
                  else "\nthe parallel twin never wins in this sweep\n", file=out)
        for name in names:
            if name == "PARALLEL_MIN_WORK":
                continue
            values, shapes, what = CANDIDATES[name]
            current = getattr(tuning, name)
            values = tuple(sorted(set(values) | {current}))
            res = measure_candidates(name, values, shapes, dtype, args.rounds)
            print(f"{name} = {fmt_value(current)} ({what}): step time relative to the current value\n", file=out)
            print("| N x D x H | " + " | ".join(fmt_value(v) for v in values) + " |", file=out)
            print("|---|" + "---|" * len(values), file=out)
            for shape, t in res.items():
                base = t[current]
                print(f"| {fmt_shape(shape)} | " + " | ".join(f"{t[v] / base:.2f}" for v in values) + " |", file=out)
            best = min(values, key=lambda v: np.prod([t[v] / t[current] for t in res.values()]))
            print(f"\nfastest here (geometric mean): {fmt_value(best)}\n", file=out)
    print(f"({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
