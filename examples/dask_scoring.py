"""Score a trained layer over more rows than memory holds, with Dask.

A classifier head (an Affine layer, W: D x H) scores every row of X and the
script counts the predicted classes (argmax per row). Two runs on a local
2-worker ``distributed`` cluster (loopback only, no dashboard):

1. **In memory vs cluster**: an X that fits (``--rows``), scored by one
   ``numba_affine.affine_forward`` call in this process, then by
   ``numba_affine.dask.affine_forward`` on the cluster with X already in the
   workers' memory (``persist``). Prints rows/s of both and checks that the
   class counts agree.
2. **Streamed**: an X of ``--stream-gib`` GiB drawn by ``dask.array.random``
   chunk by chunk on the workers, larger than the memory the workers are
   given (``--memory-limit`` each): every chunk is drawn, scored and
   dropped. Prints rows/s and the peak memory of each worker process.

    pip install ".[dask]"
    python examples/dask_scoring.py [--rows 4000000] [--stream-gib 6] [--memory-limit 1GiB]

Each worker runs one task at a time with one Numba thread
(``numba_threads=1``): 2 workers x 1 thread x 1 Numba thread = the 2 cores.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """Samples every worker's process memory (RSS) while the block runs; ``peak`` per worker."""

    def __init__(self, client, every: float = 0.1):
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            for worker, value in self.client.run(rss).items():
                self.peak[worker] = max(self.peak.get(worker, 0), value)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def block_counts(y, H: int) -> np.ndarray:
    """Rows of ``y`` whose largest score is in column j, for every j (the predicted classes, counted)."""
    return np.bincount(np.argmax(y, axis=1), minlength=H)


def class_counts(Y, H: int):
    """:func:`block_counts` of numpy ``Y``, or of dask ``Y`` (one count per block, then summed)."""
    import dask.array as da

    if not isinstance(Y, da.Array):
        return block_counts(Y, H)
    per_block = Y.map_blocks(lambda y: block_counts(y, H)[None], chunks=((1,) * Y.numblocks[0], (H,)), dtype=np.int64)
    return per_block.sum(axis=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows of the in-memory comparison")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--stream-gib", type=float, default=6.0, help="size of the streamed X (0: skip)")
    parser.add_argument("--memory-limit", default="1GiB", help="memory limit of each worker")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import numba_affine as na
    from numba_affine import dask as nad

    D, H = args.features, args.classes
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((D, H)) / np.sqrt(D)).astype(np.float32)
    b = rng.standard_normal(H).astype(np.float32)

    def cluster(memory_limit):
        return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, memory_limit=memory_limit, silence_logs=40)

    with cluster("auto") as comparison, Client(comparison) as client:
        # 1. in memory vs cluster, same data
        # drawn on the workers and kept there; the same rows fetched into this process
        X = da.random.default_rng(2).standard_normal((args.rows, D), chunks=(args.chunk_rows, D),
                                                      dtype=np.float32).persist()
        x = np.concatenate(client.gather(client.compute(list(X.to_delayed().ravel()))))  # block by block
        print(f"in memory vs cluster: X {args.rows} x {D} float32 ({x.nbytes / 2**30:.2f} GiB), W {D} x {H}, "
              f"chunks of {args.chunk_rows} rows, 2 workers x 1 thread")
        want = class_counts(na.affine_forward(x, W, b), H)  # also compiles here
        counts = dask.compute(class_counts(nad.affine_forward(X, W, b), H))[0]  # and in the workers
        assert np.array_equal(counts, want), (counts, want)
        t_mem, t_clu = [], []
        for _ in range(args.rounds):
            time.sleep(0.2)
            t0 = time.perf_counter()
            class_counts(na.affine_forward(x, W, b), H)
            t_mem.append(time.perf_counter() - t0)
            time.sleep(0.2)
            t0 = time.perf_counter()
            class_counts(nad.affine_forward(X, W, b), H).compute()
            t_clu.append(time.perf_counter() - t0)
        mem, clu = args.rows / np.median(t_mem), args.rows / np.median(t_clu)
        print(f"  in-memory affine_forward (this process, 2 Numba threads): {mem / 1e6:7.1f} M rows/s")
        print(f"  numba_affine.dask on the cluster (X persisted):           {clu / 1e6:7.1f} M rows/s "
              f"({clu / mem:.2f}x in-memory)")
        print(f"  class counts equal: {np.array_equal(counts, want)}")

    # 2. streamed: larger than the workers' memory
    if args.stream_gib > 0:
        with cluster(args.memory_limit) as streaming, Client(streaming) as client:
            rows = int(args.stream_gib * 2**30 / (4 * D)) // args.chunk_rows * args.chunk_rows
            print(f"streamed: X {rows} x {D} float32 ({rows * D * 4 / 2**30:.1f} GiB) from dask.array.random, "
                  f"workers limited to {args.memory_limit} each")
            Xs = da.random.default_rng(1).standard_normal((rows, D), chunks=(args.chunk_rows, D), dtype=np.float32)
            with PeakMemory(client) as peak:
                t0 = time.perf_counter()
                counts = class_counts(nad.affine_forward(Xs, W, b), H).compute()
                seconds = time.perf_counter() - t0
            assert counts.sum() == rows
            t0 = time.perf_counter()
            Xs.sum().compute()  # the same rows drawn (and summed) without the layer
            drawing = time.perf_counter() - t0
            print(f"  {rows / seconds / 1e6:.1f} M rows/s, {seconds:.1f} s; drawing the rows alone takes {drawing:.1f} s")
            for worker, value in sorted(peak.peak.items()):
                print(f"  peak memory of worker {worker}: {value / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
