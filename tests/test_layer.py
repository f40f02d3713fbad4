"""The Affine layer: the seed's API, the book's N-D handling, no copies of
parameters, and an end-to-end numerical gradient check of a two-layer net."""

import dataclasses

import numpy as np
import pytest
from reference import DTYPES, assert_matches, backward, forward, make_inputs

import numba_affine as na


def test_seed_walkthrough_on_the_layer():
    rng = np.random.default_rng(0)
    X, W, b, dY = rng.random((20, 50)), rng.random((50, 10)), rng.random(10), rng.random((20, 10))
    layer = na.Affine(W, b)
    assert layer.x is None and layer.dW is None and layer.db is None
    assert layer.W.shape == (50, 10) and layer.b.shape == (10,)
    Y = layer.forward(X)
    assert Y.shape == (20, 10)
    assert_matches(Y, np.dot(X, W) + b, np.float64, 50)
    assert layer.x is X
    dX = layer.backward(dY)
    assert dX.shape == (20, 50) and layer.dW.shape == (50, 10) and layer.db.shape == (10,)
    for got, want in zip((dX, layer.dW, layer.db), backward(dY, X, W)):
        assert_matches(got, want, np.float64, 20)


def test_is_a_dataclass_that_keeps_the_very_arrays():
    W, b = np.ones((3, 2)), np.zeros(2)
    layer = na.Affine(W, b)
    assert dataclasses.is_dataclass(layer)
    assert layer.W is W and layer.b is b
    x = np.ones((4, 3))
    y1 = layer.forward(x).copy()
    layer.backward(np.ones((4, 2)))
    W -= 0.5 * layer.dW  # the book's in-place SGD step
    b -= 0.5 * layer.db
    y2 = layer.forward(x)
    assert_matches(y2, x @ W + b, np.float64, 3)
    assert not np.allclose(y1, y2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nd_input_round_trip(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    W = rng.standard_normal((12, 5)).astype(dtype)
    layer = na.Affine(W, np.zeros(5, dtype))
    y = layer.forward(x)
    assert y.shape == (4, 5) and y.dtype == dtype
    assert layer.original_x_shape == (4, 3, 2, 2)
    dx = layer.backward(np.ones((4, 5), dtype))
    assert dx.shape == (4, 3, 2, 2) and dx.dtype == dtype
    assert_matches(layer.dW, x.reshape(4, 12).astype(np.float64).T @ np.ones((4, 5)), dtype, 4)


def test_layer_without_bias():
    x, W, _, dout = make_inputs(6, 5, 4, np.float64)
    layer = na.Affine(W)
    assert_matches(layer.forward(x), forward(x, W), np.float64, 5)
    layer.backward(dout)
    assert layer.db is None
    assert_matches(layer.dW, backward(dout, x, W)[1], np.float64, 6)


def test_repr_is_short():
    layer = na.Affine(np.zeros((784, 100), np.float32), np.zeros(100, np.float32))
    r = repr(layer)
    assert "(784, 100)" in r and "float32" in r and len(r) < 200
    layer.forward(np.zeros((3, 784), np.float32))
    assert "(3, 784)" in repr(layer)


class TwoLayerNet:
    """Affine -> ReLU -> Affine -> softmax cross-entropy, as in the book (ch. 5)."""

    def __init__(self, rng, D, Hd, C):
        self.params = {
            "W1": rng.standard_normal((D, Hd)) * 0.5, "b1": rng.standard_normal(Hd) * 0.1,
            "W2": rng.standard_normal((Hd, C)) * 0.5, "b2": rng.standard_normal(C) * 0.1,
        }
        p = self.params
        self.a1 = na.Affine(p["W1"], p["b1"])
        self.a2 = na.Affine(p["W2"], p["b2"])

    def loss(self, x, t):
        h = self.a1.forward(x)
        self.mask = h <= 0
        h = np.where(self.mask, 0.0, h)
        s = self.a2.forward(h)
        s = s - s.max(axis=1, keepdims=True)
        self.p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        self.t = t
        return -np.mean(np.log(self.p[np.arange(len(t)), t]))

    def gradient(self, x, t):
        self.loss(x, t)
        d = self.p.copy()
        d[np.arange(len(t)), t] -= 1
        d /= len(t)
        d = self.a2.backward(d)
        d[self.mask] = 0
        self.a1.backward(d)
        return {"W1": self.a1.dW, "b1": self.a1.db, "W2": self.a2.dW, "b2": self.a2.db}


def test_two_layer_net_gradient_matches_numerical_gradient():
    rng = np.random.default_rng(42)
    net = TwoLayerNet(rng, D=6, Hd=5, C=3)
    x = rng.standard_normal((4, 6))
    t = np.array([0, 2, 1, 2])
    analytic = net.gradient(x, t)
    for name, param in net.params.items():
        before = param.copy()
        numeric = na.numerical_gradient(lambda _: net.loss(x, t), param)
        np.testing.assert_array_equal(param, before)  # restored exactly
        err = np.abs(analytic[name] - numeric).max() / max(1e-8, np.abs(numeric).max())
        assert err < 1e-6, (name, err)


def test_a_wrong_gradient_is_caught():
    """The check above can fail: a layer whose dW is off by 1% is detected."""
    rng = np.random.default_rng(42)
    net = TwoLayerNet(rng, D=6, Hd=5, C=3)
    x = rng.standard_normal((4, 6))
    t = np.array([0, 2, 1, 2])
    wrong = net.gradient(x, t)["W1"] * 1.01
    numeric = na.numerical_gradient(lambda _: net.loss(x, t), net.params["W1"])
    assert np.abs(wrong - numeric).max() / np.abs(numeric).max() > 1e-3


def test_numerical_gradient_of_a_quadratic():
    x = np.array([[3.0, -4.0], [0.5, 2.0]])
    g = na.numerical_gradient(lambda v: float(np.sum(v ** 2)), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-7)
    np.testing.assert_array_equal(x, [[3.0, -4.0], [0.5, 2.0]])
