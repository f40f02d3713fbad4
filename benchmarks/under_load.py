"""Under load: how much does a training step slow down when another process
keeps one of the cores busy?

    python benchmarks/under_load.py [--shape 100x784x100] [--rounds 15]

Times an ``Affine`` forward + backward step (median of ``--rounds`` batches),
first on the idle machine, then while a second process spins on one core,
and prints the slow-down. A parallel kernel whose threads wait for each
other at a barrier can fall off a cliff when one of its threads loses its
core; the target is a slow-down of at most 2.5x.

This is a script, not an asv benchmark (asv imports this module and finds
nothing to run): its figure goes in the README's Reliability section.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

SPIN = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def step_seconds(layer, x, dout, rounds: int) -> float:
    from numba_affine.bench import median_seconds

    def step():
        layer.forward(x)
        layer.backward(dout)

    return median_seconds(step, rounds, budget=0.05)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="100x784x100")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    args = parser.parse_args(argv)

    from numba_affine import Affine

    N, D, H = (int(v) for v in args.shape.split("x"))
    rng = np.random.default_rng(0)
    dt = np.dtype(args.dtype)
    x = rng.standard_normal((N, D)).astype(dt)
    W = (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dt)
    b = np.zeros(H, dt)
    dout = rng.standard_normal((N, H)).astype(dt)
    layer = Affine(W, b)

    idle = step_seconds(layer, x, dout, args.rounds)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.5)
        loaded = step_seconds(layer, x, dout, args.rounds)
    finally:
        spinner.kill()
        spinner.wait()
    time.sleep(0.5)
    idle_again = step_seconds(layer, x, dout, args.rounds)
    idle = min(idle, idle_again)
    print(f"{args.dtype} {args.shape} forward+backward step: idle {idle * 1e3:.3f} ms, "
          f"one core busy {loaded * 1e3:.3f} ms, slow-down {loaded / idle:.2f}x (target <= 2.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
