"""Where cold compile time goes, per kernel and per Numba pass.

    python benchmarks/compile_profile.py [--dtype float64]

Compiles every kernel of one dtype in this process without the cache
(``NUMBA_AFFINE_NO_CACHE=1``) through ``warmup()`` and prints, per compiled
kernel, the sum of Numba's pipeline timers and the passes that take the
most (the lowering passes include LLVM's optimisation and code
generation). A script, not an asv benchmark.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    args = parser.parse_args(argv)
    os.environ["NUMBA_AFFINE_NO_CACHE"] = "1"
    import numpy as np

    import numba_affine as na
    from numba_affine import kernels

    t0 = time.perf_counter()
    na.warmup((np.dtype(args.dtype),))
    print(f"warmup({args.dtype}) without the cache: {time.perf_counter() - t0:.2f} s\n")
    print("| kernel | Numba pipeline s | largest passes (s) |")
    print("|---|---|---|")
    dt = np.dtype(args.dtype)
    for name, fn in (("product (parallel twin)", kernels.entry(dt, True)),
                     ("product (serial twin)", kernels.entry(dt, False)),
                     ("row_product", kernels.row_product)):
        for sig in fn.signatures:
            passes = {}
            for timings in fn.get_metadata(sig)["pipeline_times"].values():
                for pname, v in timings.items():
                    key = pname.split("_", 1)[-1]
                    passes[key] = passes.get(key, 0.0) + v.init + v.run + v.finalize
            top = sorted(passes.items(), key=lambda kv: -kv[1])[:3]
            print(f"| {name} | {sum(passes.values()):.2f} | " + ", ".join(f"{k} {v:.2f}" for k, v in top) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
