"""First-call (compile) time: fresh interpreters, an empty Numba cache, then the cache.

    python benchmarks/first_call.py [--runs 3]

Each figure comes from a new Python process with ``NUMBA_CACHE_DIR`` set to
a new empty directory (cold: everything compiles) or to the directory the
cold run filled (cached: everything loads). Measured in the child:

* ``import numba_affine``;
* the first forward + backward at the seed's 20x50x10 float64 (serial twin);
* after that, the first forward + backward at 300x784x100 float64 (the
  parallel twin);
* in another process, ``warmup()`` of both dtypes (every kernel).

The output is the Markdown table of ``docs/tuning.md``. A script, not an
asv benchmark (``bench_startup.py`` holds those).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD_CALLS = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import numba_affine as na
t1 = time.perf_counter()
rng = np.random.default_rng(0)
def step(N, D, H):
    x, W, b, d = rng.random((N, D)), rng.random((D, H)), rng.random(H), rng.random((N, H))
    na.affine_forward(x, W, b)
    na.affine_backward(d, x, W)
step(20, 50, 10)
t2 = time.perf_counter()
step(300, 784, 100)
t3 = time.perf_counter()
import numba
print(json.dumps({"import": t1 - t0, "seed": t2 - t1, "parallel": t3 - t2, "layer": numba.threading_layer()}))
"""

CHILD_WARMUP = r"""
import json, time
import numpy as np
import numba_affine as na
t0 = time.perf_counter()
na.warmup((np.float64, np.float32))
print(json.dumps({"warmup": time.perf_counter() - t0}))
"""


def child(code: str, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    rows: dict[str, list[float]] = {}
    layer = ""
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            cold = child(CHILD_CALLS, cache)
            warm = child(CHILD_CALLS, cache)
            layer = cold.pop("layer")
            warm.pop("layer")
        with tempfile.TemporaryDirectory() as cache:
            wcold = child(CHILD_WARMUP, cache)
            wwarm = child(CHILD_WARMUP, cache)
        for key, value in [*cold.items(), *wcold.items()]:
            rows.setdefault(f"{key} cold", []).append(value)
        for key, value in [*warm.items(), *wwarm.items()]:
            rows.setdefault(f"{key} cached", []).append(value)
        rows.setdefault("import + first seed call cached", []).append(warm["import"] + warm["seed"])
    labels = {
        "import": "`import numba_affine`",
        "seed": "first forward + backward, 20x50x10 float64",
        "parallel": "then the first parallel forward + backward, 300x784x100 float64",
        "warmup": "`warmup()` of both dtypes, fresh process",
    }
    print(f"threading layer {layer}; {args.runs} runs each (min / median / max, seconds)\n")
    print("| what | empty cache | from the cache |")
    print("|---|---|---|")

    def fmt(vals):
        v = np.array(vals)
        return f"{v.min():.2f} / {np.median(v):.2f} / {v.max():.2f}"

    for key, label in labels.items():
        print(f"| {label} | {fmt(rows[key + ' cold'])} | {fmt(rows[key + ' cached'])} |")
    print(f"| import + first seed call | | {fmt(rows['import + first seed call cached'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
