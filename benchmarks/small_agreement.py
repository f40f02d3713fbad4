"""The asv suite's small-call table next to ``python -m numba_affine.bench``'s, on this machine.

Reads ``Small``'s recorded times of one commit (``.asv/results/MACHINE/HASH-*.json``), turns them
into speed-ups over numpy (forward, backward, the layer against the seed's class), then measures the
bench CLI's small table with the installed numba_affine (check out and install that commit first)::

    python benchmarks/small_agreement.py --machine zen5-avx512 --commit d836c7f
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import subprocess
from pathlib import Path

PAIRS = {
    "forward": ("time_numpy_forward", "time_affine_forward"),
    "backward": ("time_numpy_backward", "time_affine_backward"),
    "layer": ("time_numpy_seed_layer_step", "time_affine_step"),
}


def asv_speedups(machine: str, commit: str) -> dict:
    """(label, dtype) -> {which: t(numpy) / t(numba-affine)} from one commit's recorded ``Small`` times."""
    full = subprocess.run(["git", "rev-parse", commit], capture_output=True, text=True, check=True).stdout.strip()
    root = Path(__file__).resolve().parents[1] / ".asv" / "results" / machine
    (path,) = glob.glob(str(root / f"{full[:8]}-*.json"))
    data = json.loads(Path(path).read_text())
    columns = data["result_columns"]

    def values(name):
        row = dict(zip(columns, data["results"][f"bench_affine.Small.{name}"]))
        combos = itertools.product(*[[eval(p) for p in ps] for ps in row["params"]])
        return dict(zip(combos, row["result"]))

    out: dict = {}
    for which, (numpy_name, ours_name) in PAIRS.items():
        numpy_t, ours_t = values(numpy_name), values(ours_name)
        for key in numpy_t:
            out.setdefault(key, {})[which] = numpy_t[key] / ours_t[key]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    recorded = asv_speedups(args.machine, args.commit)

    from numba_affine import warmup
    from numba_affine.bench import measure_small

    from common import SMALL_SHAPES  # benchmarks/ is this script's folder

    warmup()
    print(f"{'shape':>22} {'dtype':>7} | {'asv fwd / bwd / layer':>22} | {'bench CLI fwd / bwd / layer':>28}")
    for dtype in ("float64", "float32"):
        for label, shape in SMALL_SHAPES.items():
            t = measure_small(shape, dtype, args.rounds)
            cli = [t[f"numpy {w}"] / t[f"numba-affine {w}"] for w in PAIRS]
            a = [recorded[label, dtype][w] for w in PAIRS]
            print(f"{label:>22} {dtype:>7} | {' / '.join(f'{v:.2f}' for v in a):>22} | {' / '.join(f'{v:.2f}' for v in cli):>28}")


if __name__ == "__main__":
    main()
