"""The fixed problem set behind ``tests/data/digests.json``: SHA-256 of every output.

The library promises the same bits on every x86-64 CPU (README, "Same bits
everywhere"). This file defines problems whose inputs are bit-reproducible
on any platform (PCG64's raw 64-bit stream turned into floats with exact
integer arithmetic, no ``standard_normal``) and hashes what the public
functions return. ``tests/test_bitwise.py`` compares with the committed file.

Regenerate only when the arithmetic contract itself changes (never for a
speed change)::

    python tests/bitwise.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

DIGESTS = Path(__file__).parent / "data" / "digests.json"

#: (N, D, H): one, primes, the seed, odd remainders of both vector widths and
#: of both register blocks, a sum longer than a block of k, a single sample
#: and a product large enough for the parallel path.
SHAPES = [
    (1, 1, 1),
    (2, 3, 5),
    (7, 13, 17),
    (20, 50, 10),
    (1, 784, 100),
    (33, 129, 31),
    (61, 1, 37),
    (131, 67, 514),
    (257, 1031, 13),
    (311, 701, 263),
]


def uniform(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Floats in [-1, 1) from the generator's raw 64-bit words (exact on every platform)."""
    n = int(np.prod(shape))
    raw = rng.bit_generator.random_raw(n) if n else np.zeros(0, np.uint64)
    return ((raw >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0).astype(dtype).reshape(shape)


def problem(N, D, H, dtype):
    """x, W, b, dout and starting values for dW and db, seeded by the shape."""
    rng = np.random.default_rng([N, D, H, np.dtype(dtype).itemsize])
    x, W, b = uniform(rng, (N, D), dtype), uniform(rng, (D, H), dtype), uniform(rng, (H,), dtype)
    dout, dW0, db0 = uniform(rng, (N, H), dtype), uniform(rng, (D, H), dtype), uniform(rng, (H,), dtype)
    return x, W, b, dout, dW0, db0


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def compute() -> dict[str, str]:
    """Every output of the problem set, hashed: ``{"N,D,H dtype what": sha256}``."""
    import numba_affine as na

    out = {}
    for N, D, H in SHAPES:
        for dtype in (np.float32, np.float64):
            x, W, b, dout, dW0, db0 = problem(N, D, H, dtype)
            key = f"{N}x{D}x{H} {np.dtype(dtype).name}"
            out[f"{key} forward+b"] = _sha(na.affine_forward(x, W, b))
            out[f"{key} forward"] = _sha(na.affine_forward(x, W))
            dx, dW, db = na.affine_backward(dout, x, W)
            out[f"{key} dx"] = _sha(dx)
            out[f"{key} dW"] = _sha(dW)
            out[f"{key} db"] = _sha(db)
            dWa, dba = dW0.copy(), db0.copy()
            na.affine_backward(dout, x, W, dW_out=dWa, db_out=dba, accumulate=True)
            out[f"{key} dW accumulate"] = _sha(dWa)
            out[f"{key} db accumulate"] = _sha(dba)
    return out


def recorded() -> dict[str, str]:
    return json.loads(DIGESTS.read_text())


def main(argv=()) -> int:
    """Write the file (``--write``), or print how this build compares with it (exit 1 if not all match)."""
    if list(argv) == ["--write"]:
        DIGESTS.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {DIGESTS}")
        return 0
    now, then = compute(), recorded()
    bad = [k for k in then if now.get(k) != then[k]]
    print(f"{len(then) - len(bad)} of {len(then)} digests match" + "".join(f"\n  differs: {k}" for k in bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
