"""The research example runs end to end (one short epoch) so it cannot rot.

Needs the ``examples`` extra (scikit-learn, matplotlib, tqdm); CI installs it.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the example needs: pip install '.[examples]'")
pytest.importorskip("tqdm", reason="the example needs: pip install '.[examples]'")
pytest.importorskip("matplotlib", reason="the example needs: pip install '.[examples]'")

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


def test_train_digits_one_epoch(tmp_path):
    plot = tmp_path / "training.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "2", "--hidden", "32", "--plot", str(plot), "--no-timing"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "gradient check" in out
    err = float(out.split("max relative error ")[1].split()[0])
    assert err < 1e-5
    acc = float(out.strip().splitlines()[-1].split("test accuracy: ")[1])
    assert acc > 0.5  # chance is 0.1; two short epochs already learn (0.63 measured)
    assert plot.exists() and plot.stat().st_size > 10_000


def test_train_digits_is_reproducible():
    cmd = [sys.executable, str(SCRIPT), "--epochs", "1", "--hidden", "16", "--no-timing", "--seed", "3"]
    runs = [subprocess.run(cmd, capture_output=True, text=True, timeout=600) for _ in range(2)]
    lines = [[ln for ln in r.stdout.splitlines() if ln.startswith("epoch")] for r in runs]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    assert lines[0] == lines[1] and lines[0]


NJIT_SCRIPT = SCRIPT.parent / "njit_training.py"


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_njit_training_learns_and_matches_the_numpy_gradients(dtype, tol):
    proc = subprocess.run(
        [sys.executable, str(NJIT_SCRIPT), "--epochs", "3", "--hidden", "32", "--dtype", dtype, "--no-timing"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    diff = float(out.split("max relative difference ")[1].split()[0])
    assert diff < tol
    losses = [float(ln.split("loss ")[1].split()[0]) for ln in out.splitlines() if ln.startswith("epoch ")]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
    assert losses[0] < 2.3  # below chance (ln 10) already after the first epoch
    acc = float(out.strip().splitlines()[-1].split("test accuracy: ")[1])
    assert acc > 0.6  # chance is 0.1; 0.75 measured after three epochs of hidden 32
