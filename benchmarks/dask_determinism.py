"""numba_affine.dask: the same bits on every scheduler, worker count and thread count (docs/tuning.md).

    python benchmarks/dask_determinism.py [--rows 200000] [--chunk-rows 7001]

Computes Y, dX, dW and db of one row-chunked X on the synchronous,
threaded (1 and 2 threads) and process schedulers and on loopback
``distributed`` clusters of 1 and 2 workers, and prints a hash of each
result per run; every row must print the same hashes. Also prints the
forward's hash under a different chunking (the same: batch invariance)
and dW's (different in the last bits: a sum over other partials).
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:12]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-rows", type=int, default=7001)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)

    import warnings

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from numba_affine import dask as nad

    warnings.filterwarnings("ignore", message=".*Large object")  # x is shipped in the graph on purpose

    rng = np.random.default_rng(0)
    D, H = 100, 10
    x = rng.standard_normal((args.rows, D)).astype(args.dtype)
    dout = rng.standard_normal((args.rows, H)).astype(args.dtype)
    W = rng.standard_normal((D, H)).astype(args.dtype)
    b = rng.standard_normal(H).astype(args.dtype)

    def results(rows, **kwargs):
        X, dY = da.from_array(x, chunks=(rows, D)), da.from_array(dout, chunks=(rows, H))
        return dask.compute(nad.affine_forward(X, W, b), *nad.affine_backward(dY, X, W), **kwargs)

    print(f"X {args.rows} x {D} {args.dtype}, {-(-args.rows // args.chunk_rows)} chunks of {args.chunk_rows} rows\n")
    print("| run | Y | dX | dW | db |")
    print("|---|---|---|---|---|")
    runs = {"synchronous": dict(scheduler="sync"), "threads, 1": dict(scheduler="threads", num_workers=1),
            "threads, 2": dict(scheduler="threads", num_workers=2),
            "processes, 2": dict(scheduler="processes", num_workers=2)}
    rows = [(name, results(args.chunk_rows, **kw)) for name, kw in runs.items()]
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            rows.append((f"distributed, {workers} worker(s)", results(args.chunk_rows, scheduler=client)))
    rows.append((f"synchronous, chunks of {args.chunk_rows // 3} rows", results(args.chunk_rows // 3, scheduler="sync")))
    for name, got in rows:
        print(f"| {name} | " + " | ".join(digest(a) for a in got) + " |")
    same = all(all(np.array_equal(a, c) for a, c in zip(got, rows[0][1])) for _, got in rows[:-1])
    print(f"\nevery scheduler bitwise identical for one chunking: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
