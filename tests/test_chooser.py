"""The choice between the parallel and the serial kernel for large calls
(``api._Chooser``): it follows the faster variant and never changes a result."""

from __future__ import annotations

import numpy as np
import pytest

import numba_affine as na
from numba_affine import api, kernels
from numba_affine._jit import KernelPair
from reference import DTYPES, make_inputs


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_pair(clock, cost):
    """Variants that only advance the fake clock by ``cost[name]`` seconds."""

    def serial(*args):
        clock.now += cost["serial"]
        calls.append("s")

    def parallel(*args):
        clock.now += cost["parallel"]
        calls.append("p")

    calls: list[str] = []
    return KernelPair(parallel=parallel, serial=serial), calls


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(api, "perf_counter", c)
    monkeypatch.setattr(api._Chooser, "last_parallel_end", [0.0])
    return c


ARGS = (np.zeros((4, 3)), np.zeros((3, 2)), 7)


def test_warm_up_runs_each_variant_then_follows_the_faster(clock):
    cost = {"serial": 2e-3, "parallel": 1e-3}
    pair, calls = fake_pair(clock, cost)
    chooser = api._Chooser(pair)
    for _ in range(64):
        chooser(*ARGS)
    w = api._Chooser.WARMUP
    assert calls[: 2 * w] == ["p"] * w + ["s"] * w
    after = calls[2 * w :]
    assert after.count("s") <= 2 * api._Chooser.PROBE_RUN  # only the probes
    assert after.count("p") > 40


def test_falls_back_to_serial_when_parallel_calls_slow_down_and_comes_back(clock):
    cost = {"serial": 2e-3, "parallel": 1e-3}
    pair, calls = fake_pair(clock, cost)
    chooser = api._Chooser(pair)
    for _ in range(40):
        chooser(*ARGS)
    cost["parallel"] = 8e-3  # another process took a core
    del calls[:]
    for _ in range(200):
        chooser(*ARGS)
    assert calls[-100:].count("s") > 85
    cost["parallel"] = 1e-3  # the core is free again
    del calls[:]
    for _ in range(400):
        chooser(*ARGS)
    assert calls[-100:].count("p") > 85


def test_a_parallel_call_after_a_pause_is_not_recorded(clock):
    cost = {"serial": 2e-3, "parallel": 1e-3}
    pair, calls = fake_pair(clock, cost)
    chooser = api._Chooser(pair)
    for _ in range(40):
        chooser(*ARGS)
    timings = next(iter(chooser.timings.values()))
    before = timings.seconds[1]
    clock.now += 1.0  # a pause: the threads went to sleep
    cost["parallel"] = 50e-3  # the first call pays for waking them
    chooser(*ARGS)
    assert calls[-1] == "p"
    assert timings.seconds[1] == before


def test_shapes_are_timed_separately(clock):
    pair, calls = fake_pair(clock, {"serial": 1e-3, "parallel": 1e-3})
    chooser = api._Chooser(pair)
    chooser(np.zeros((4, 3)), np.zeros((3, 2)), 7)
    chooser(np.zeros((5, 3)), np.zeros((3, 2)), 7)
    chooser(np.zeros((5, 3)), np.zeros((3, 2)), 3)
    chooser(np.zeros((5, 3), np.float32), np.zeros((3, 2), np.float32), 3)
    assert len(chooser.timings) == 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(20, 50, 10), (100, 784, 100), (2048, 64, 10), (40, 4099, 9), (131, 67, 514)])
def test_serial_and_parallel_kernels_give_bitwise_identical_results(shape, dtype):
    """What the chooser relies on: the variants only differ in who runs a tile."""
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    flags = api._ALL[H < api.SHORT_H]
    out = {}
    for name in ("serial", "parallel"):
        y = np.empty((N, H), dtype)
        dx, dW, db = np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
        getattr(kernels.forward_kernels, name)(x, W, b, y)
        getattr(kernels.backward_kernels, name)(dout, x, W, dx, dW, db, flags)
        out[name] = (y, dx, dW, db)
    for a, c in zip(out["serial"], out["parallel"]):
        np.testing.assert_array_equal(a, c)


def test_large_calls_go_through_the_chooser_and_stay_correct():
    x, W, b, dout = make_inputs(100, 784, 100, np.float64)
    first = na.affine_forward(x, W, b)
    for _ in range(20):
        np.testing.assert_array_equal(na.affine_forward(x, W, b), first)
    chooser = api._CHOOSERS[kernels.forward_kernels]
    key = ((100, 784), (784, 100), (100,), (100, 100), np.dtype(np.float64))
    assert chooser.timings[key].calls >= 21
