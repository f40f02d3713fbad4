"""The two-layer digits network with its whole training step in jitted code.

The same network as ``train_digits.py`` (Affine -> ReLU -> Affine ->
softmax cross-entropy, Adam, batches of 32 of scikit-learn's digits), but
the step (forward, loss, backward, update) is one ``@njit`` function built
on numba-affine's calls, and so is the epoch that loops over the batches:
no Python runs between two batches. Every buffer is allocated once, before
training, and passed as ``out=``: a step allocates nothing.

    pip install ".[examples]"
    python examples/njit_training.py

It prints the test accuracy and the epoch time against the same network
in Python, once with the seed's numpy layer and once with numba-affine's
``Affine`` layer (``train_digits.py``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

import numba_affine as na

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_digits import Adam, SeedAffine, TwoLayerNet, load_data, run_epoch, training_arguments  # noqa: E402


# ----------------------------------------------------------------------------- the jitted network

#: error_model="numpy": a float division by zero gives inf, as in numpy, with
#: no check in the loop (the check keeps loops from vectorising).
jit = njit(cache=True, error_model="numpy")


@jit
def relu_(h):
    """h = max(h, 0) in place (the book's mask: the inputs <= 0 become 0)."""
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            if h[i, j] <= 0:
                h[i, j] = 0


@jit
def softmax_cross_entropy(y, t, dy):
    """Mean cross-entropy of the softmax of the scores ``y`` against labels ``t``;
    its gradient with respect to ``y`` is written into ``dy``."""
    n, c = y.shape
    loss = 0.0
    for i in range(n):
        top = y[i, 0]
        for j in range(1, c):
            top = max(top, y[i, j])
        total = y[i, 0] * 0  # zero in y's dtype
        for j in range(c):
            dy[i, j] = np.exp(y[i, j] - top)
            total += dy[i, j]
        for j in range(c):
            dy[i, j] /= total
        loss -= np.log(dy[i, t[i]] + 1e-12)
        dy[i, t[i]] -= 1
        for j in range(c):
            dy[i, j] /= n
    return loss / n


@jit
def loss_and_gradients(xb, tb, params, grads, work):
    """Forward and backward of one batch; the gradients go into ``grads``."""
    W1, b1, W2, b2 = params
    dW1, db1, dW2, db2 = grads
    n = xb.shape[0]
    h, dh, y, dy = work[0][:n], work[1][:n], work[2][:n], work[3][:n]
    na.affine_forward(xb, W1, b1, out=h)
    relu_(h)
    na.affine_forward(h, W2, b2, out=y)
    loss = softmax_cross_entropy(y, tb, dy)
    na.affine_backward(dy, h, W2, dx_out=dh, dW_out=dW2, db_out=db2)
    for i in range(n):  # ReLU backward: no gradient where the unit was off
        for j in range(dh.shape[1]):
            if h[i, j] == 0:
                dh[i, j] = 0
    na.affine_dw(xb, dh, out=dW1)  # no dx for the input layer
    na.affine_db(dh, out=db1)
    return loss


@jit
def adam_update(p, g, m, v, c):
    """Adam on one parameter, in place; ``c`` holds (lr_t, 1 - beta1, 1 - beta2, eps)
    in the parameter's dtype, so float32 runs in float32."""
    p, g, m, v = p.reshape(p.size), g.reshape(g.size), m.reshape(m.size), v.reshape(v.size)
    lr_t, one_minus_beta1, one_minus_beta2, eps = c[0], c[1], c[2], c[3]  # locals: the loop vectorises
    for i in range(p.size):
        m[i] += one_minus_beta1 * (g[i] - m[i])
        v[i] += one_minus_beta2 * (g[i] * g[i] - v[i])
        p[i] -= lr_t * m[i] / (np.sqrt(v[i]) + eps)


@jit
def train_step(xb, tb, params, grads, work, m, v, state, c):
    """One training step: forward, loss, backward, Adam update. Allocates nothing."""
    loss = loss_and_gradients(xb, tb, params, grads, work)
    state[0] += 1  # Adam's step count; state holds (t, lr, beta1, beta2, eps)
    t, lr, beta1, beta2 = state[0], state[1], state[2], state[3]
    c[0] = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    c[1], c[2], c[3] = 1 - beta1, 1 - beta2, state[4]
    adam_update(params[0], grads[0], m[0], v[0], c)
    adam_update(params[1], grads[1], m[1], v[1], c)
    adam_update(params[2], grads[2], m[2], v[2], c)
    adam_update(params[3], grads[3], m[3], v[3], c)
    return loss


@jit
def train_epoch(x, t, order, params, grads, work, m, v, state, c, xb, tb):
    """One epoch over ``x`` in the batches ``order`` gives; returns the mean loss."""
    batch = xb.shape[0]
    total, count = 0.0, 0
    for start in range(0, x.shape[0], batch):
        n = min(batch, x.shape[0] - start)
        for r in range(n):
            xb[r, :] = x[order[start + r], :]
            tb[r] = t[order[start + r]]
        total += train_step(xb[:n], tb[:n], params, grads, work, m, v, state, c)
        count += 1
    return total / count


class JittedNet:
    """The parameters, gradients, Adam state and buffers of the jitted network (all allocated here)."""

    def __init__(self, params: dict, batch_size: int, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = tuple(params[k] for k in ("W1", "b1", "W2", "b2"))  # trained in place
        dtype = self.params[0].dtype
        n_in, hidden = self.params[0].shape
        n_out = self.params[2].shape[1]
        self.grads = tuple(np.zeros_like(p) for p in self.params)
        self.m = tuple(np.zeros_like(p) for p in self.params)
        self.v = tuple(np.zeros_like(p) for p in self.params)
        self.state = np.array([0, lr, beta1, beta2, eps], np.float64)
        self.c = np.zeros(4, dtype)
        self.work = tuple(np.zeros((batch_size, k), dtype) for k in (hidden, hidden, n_out, n_out))
        self.xb = np.zeros((batch_size, n_in), dtype)
        self.tb = np.zeros(batch_size, np.int64)

    def epoch(self, x, t, rng) -> float:
        order = rng.permutation(len(x))
        return train_epoch(x, t, order, self.params, self.grads, self.work, self.m, self.v, self.state, self.c,
                           self.xb, self.tb)

    def gradients(self, x, t):
        """(loss, {name: gradient}) of one batch (at most ``batch_size`` rows), no update."""
        loss = loss_and_gradients(np.ascontiguousarray(x), t, self.params, self.grads, self.work)
        return loss, {k: g.copy() for k, g in zip(("W1", "b1", "W2", "b2"), self.grads)}

    def accuracy(self, x, t) -> float:
        W1, b1, W2, b2 = self.params
        y = na.affine_forward(np.maximum(na.affine_forward(x, W1, b1), 0), W2, b2)
        return float(np.mean(np.argmax(y, axis=1) == t))


# ----------------------------------------------------------------------------- the comparison


def initial_params(n_in, hidden, dtype, seed):
    """The He-initialised parameters of ``train_digits.TwoLayerNet`` (the same for every network)."""
    net = TwoLayerNet(n_in, hidden, 10, np.random.default_rng(seed), dtype, SeedAffine)
    return {k: v.copy() for k, v in net.params.items()}


def python_net(layer_cls, params):
    net = TwoLayerNet(params["W1"].shape[0], params["W1"].shape[1], 10, np.random.default_rng(0),
                      params["W1"].dtype, layer_cls)
    for k, v in params.items():
        net.params[k][...] = v
    return net


def epoch_times(x, t, args, dtype, rounds: int) -> dict[str, float]:
    """Median seconds per epoch of the three networks, epochs interleaved with pauses."""
    start = initial_params(x.shape[1], args.hidden, dtype, args.seed)
    jitted = JittedNet({k: v.copy() for k, v in start.items()}, args.batch_size, args.lr)
    nets = {"numpy": python_net(SeedAffine, start), "Affine": python_net(na.Affine, start)}
    opts = {name: Adam(args.lr) for name in nets}
    rng = np.random.default_rng(args.seed)
    runs = {
        "jitted": lambda: jitted.epoch(x, t, rng),
        "numpy": lambda: run_epoch(nets["numpy"], opts["numpy"], x, t, args.batch_size, rng),
        "Affine": lambda: run_epoch(nets["Affine"], opts["Affine"], x, t, args.batch_size, rng),
    }
    times = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up: compilation, caches
        run()
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(0.15)  # OpenBLAS's idle threads stop spinning
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def gradient_difference(x, t, hidden, dtype, seed) -> float:
    """Largest relative difference between the jitted gradients and the numpy network's."""
    start = initial_params(x.shape[1], hidden, dtype, seed)
    numpy_loss, numpy_grads = python_net(SeedAffine, start).gradient(x, t)
    jitted_loss, jitted_grads = JittedNet(start, len(x)).gradients(x, t)
    worst = abs(numpy_loss - jitted_loss) / max(abs(numpy_loss), 1e-30)
    for k, g in numpy_grads.items():
        scale = max(float(np.max(np.abs(g))), 1e-30)
        worst = max(worst, float(np.max(np.abs(g - jitted_grads[k]))) / scale)
    return worst


def main(argv=None) -> int:
    parser = training_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per network")
    parser.add_argument("--no-timing", action="store_true", help="skip the epoch-time comparison")
    args = parser.parse_args(argv)

    dtype = np.dtype(args.dtype)
    x_train, x_test, t_train, t_test = load_data(args.seed, dtype)
    print(f"digits: {len(x_train)} train / {len(x_test)} test samples, {x_train.shape[1]} features, 10 classes")
    diff = gradient_difference(x_train[:args.batch_size], t_train[:args.batch_size], args.hidden, dtype, args.seed)
    print(f"gradients against the numpy network (one batch, {dtype.name}): max relative difference {diff:.2e}")

    net = JittedNet(initial_params(x_train.shape[1], args.hidden, dtype, args.seed), args.batch_size, args.lr)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = net.epoch(x_train, t_train, rng)
        if epoch == 1:
            print(f"first epoch (compiles the step, or loads it from the cache): {time.perf_counter() - t0:.2f} s")
        print(f"epoch {epoch:3d}  loss {loss:.4f}  train acc {net.accuracy(x_train, t_train):.4f}  "
              f"test acc {net.accuracy(x_test, t_test):.4f}")

    if not args.no_timing:
        t = epoch_times(x_train, t_train, args, dtype, args.rounds)
        print(f"epoch time ({dtype.name}, batch {args.batch_size}, median of {args.rounds}): "
              f"jitted step {t['jitted'] * 1e3:.2f} ms, numpy network in Python {t['numpy'] * 1e3:.2f} ms "
              f"({t['numpy'] / t['jitted']:.2f}x), Affine layers in Python {t['Affine'] * 1e3:.2f} ms "
              f"({t['Affine'] / t['jitted']:.2f}x)")
    print(f"test accuracy: {net.accuracy(x_test, t_test):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
