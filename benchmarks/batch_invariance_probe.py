"""Probe batch invariance: does a row's output change with the batch it is computed in?

    python benchmarks/batch_invariance_probe.py

For D x H in 50x10, 784x100, 512x10, 517x259, float32 and float64, and 13
batch sizes n from 8 to 4096, compares rows 0-7 of ``f(x[:n], W)`` with
``f(x[:8], W)`` bit for bit, and counts the batch sizes whose rows are all
equal; then D = H = 1000 float32, ``x[:1]`` against the first row of
``x[:n]`` for n = 2..64 (pytorch/pytorch#136338's case). ``f`` is
numba-affine's forward, numpy's ``x @ W``, and torch's ``linear`` when
torch is installed.
"""

from __future__ import annotations

import numpy as np

SHAPES = [(50, 10), (784, 100), (512, 10), (517, 259)]
SIZES = [8, 12, 16, 24, 32, 64, 100, 128, 256, 512, 1000, 2048, 4096]


def functions():
    import numba_affine as na

    fns = {"numba-affine": lambda x, W: na.affine_forward(x, W), "numpy": lambda x, W: x @ W}
    try:
        import torch
    except ImportError:
        return fns
    fns["torch"] = lambda x, W: torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(W.T.copy())).numpy()
    return fns


def main() -> int:
    rng = np.random.default_rng(0)
    fns = functions()
    print(f"rows 0-7 of f(x[:n], W) == f(x[:8], W), bit for bit, for n in {SIZES}")
    print(f"{'':>14}" + "".join(f"{name:>16}" for name in fns))
    totals = dict.fromkeys(fns, 0)
    count = 0
    for dtype in (np.float32, np.float64):
        for D, H in SHAPES:
            x = rng.standard_normal((4096, D)).astype(dtype)
            W = (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype)
            line = f"{D:>5}x{H:<4}{np.dtype(dtype).name:>5}"
            for name, f in fns.items():
                ref = f(x[:8], W)
                equal = sum(np.array_equal(f(x[:n], W)[:8], ref) for n in SIZES)
                totals[name] += equal
                line += f"{equal:>13}/{len(SIZES)}"
            count += len(SIZES)
            print(line)
    print(f"{'all':>14}" + "".join(f"{totals[name]:>12}/{count}" for name in fns))
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    W = (rng.standard_normal((1000, 1000)) / np.sqrt(1000)).astype(np.float32)
    print("\nD = H = 1000 float32: x[:1] == first row of x[:n], n = 2..64")
    for name, f in fns.items():
        one = f(x[:1], W)
        same = sum(np.array_equal(f(x[:n], W)[:1], one) for n in range(2, 65))
        print(f"  {name:>14}: {same} of 63 batch sizes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
