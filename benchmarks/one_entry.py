"""One compiled entry per call: what the prototype costs in compile time and buys per call.

    python benchmarks/one_entry.py [--rounds 7]

For the issue "One dispatch per call". The prototypes in
``benchmarks/prototypes/`` are serial entry points, one compiled function
per dtype, ``run(op, x, W, b, dout, y, dx, dW, db)``: an operation code
picks the forward, the backward or a part of it, and a Python call would
be one dispatch to it. ``entry_call`` calls the product kernel;
``entry_inline`` holds the product's driver loop itself. Each variant runs in a fresh process with an empty ``NUMBA_CACHE_DIR``
and prints the first forward + backward at the seed's size (compile
included), then the time per call next to numpy's seed formulas
(``numba_affine.bench.compare``, median of interleaved rounds):

* ``python``: ``affine_forward`` / ``affine_backward`` as they are;
* ``entry_call``, ``entry_inline``: the prototypes, called with the arrays
  directly (no Python wrapper around them: a floor for what a thin wrapper
  would reach).

Not part of the library yet; docs/tuning.md, "One compiled entry", says why.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROTOTYPES = Path(__file__).parent / "prototypes"

CHILD = r'''
import sys, time
t0 = time.perf_counter()
variant, rounds = sys.argv[1], int(sys.argv[2])
import numpy as np
import numba_affine as na
from numba_affine.bench import compare, make_inputs, numpy_backward, numpy_forward

N, D, H = 20, 50, 10
for dtype in (np.float64, np.float32):
    x, W, b, dout = make_inputs(N, D, H, dtype)
    y, dx, dW, db, none = np.empty((N, H), dtype), np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype), np.empty(0, dtype)
    if variant == "python":
        fwd = lambda: na.affine_forward(x, W, b)
        bwd = lambda: na.affine_backward(dout, x, W)
    else:
        proto = {}
        exec(compile(sys.argv[3], "prototype", "exec"), proto)
        run = proto["runner"](dtype)
        F, B = proto["FORWARD"] | proto["WITH_BIAS"], proto["BACKWARD"]
        fwd = lambda: run(F, x, W, b, x, y, y, y, none)
        bwd = lambda: run(B, x, W, none, dout, y, dx, dW, db)
    fwd(); bwd()
    if dtype is np.float64:
        first = time.perf_counter() - t0
        print(f"{variant:12s} first forward + backward (import and compile): {first:5.2f} s")
    np.testing.assert_allclose(fwd() if variant == "python" else (fwd(), y)[1], numpy_forward(x, W, b), rtol=1e-4)
    t = compare({"numpy forward": lambda: numpy_forward(x, W, b), "forward": fwd,
                 "numpy backward": lambda: numpy_backward(dout, x, W), "backward": bwd}, rounds=rounds)
    print(f"  {np.dtype(dtype).name}: forward {t['forward'] * 1e6:5.2f} us ({t['numpy forward'] / t['forward']:.2f}x numpy), "
          f"backward {t['backward'] * 1e6:5.2f} us ({t['numpy backward'] / t['backward']:.2f}x numpy)")
'''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    for variant in ("python", "entry_call", "entry_inline"):
        source = "" if variant == "python" else (PROTOTYPES / f"{variant}.py").read_text()
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD, variant, str(args.rounds), source],
                           env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
