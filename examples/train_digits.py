"""Train a two-layer network on scikit-learn's handwritten digits with numba-affine.

Affine -> ReLU -> Affine -> softmax cross-entropy, as in *Deep Learning from
Scratch* ch. 5, on the 8x8 digits bundled with scikit-learn (no download),
with a held-out test split. The Affine layers are ``numba_affine.Affine``;
ReLU, the loss and the optimizer (Adam, updating W and b in place as the
book does) are written plainly below.

    pip install ".[examples]"
    python examples/train_digits.py --plot training.png
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict

import numpy as np

from numba_affine import Affine, numerical_gradient
from numba_affine.bench import SeedAffine  # the seed notebook's numpy layer (the timing comparison)


class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout = dout.copy()
        dout[self.mask] = 0
        return dout


class SoftmaxWithLoss:
    def __init__(self):
        self.y = self.t = None

    def forward(self, x, t):
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        self.y = e / e.sum(axis=1, keepdims=True)
        self.t = t
        return float(-np.mean(np.log(self.y[np.arange(len(t)), t] + 1e-12)))

    def backward(self):
        d = self.y.copy()
        d[np.arange(len(self.t)), self.t] -= 1
        return d / len(self.t)


class TwoLayerNet:
    """Affine -> ReLU -> Affine -> SoftmaxWithLoss; ``layer_cls`` builds the Affines."""

    def __init__(self, n_in, n_hidden, n_out, rng, dtype=np.float64, layer_cls=Affine):
        he = lambda fan_in: np.sqrt(2.0 / fan_in)  # noqa: E731
        self.params = {
            "W1": (rng.standard_normal((n_in, n_hidden)) * he(n_in)).astype(dtype),
            "b1": np.zeros(n_hidden, dtype),
            "W2": (rng.standard_normal((n_hidden, n_out)) * he(n_hidden)).astype(dtype),
            "b2": np.zeros(n_out, dtype),
        }
        p = self.params
        self.layers = OrderedDict(
            Affine1=layer_cls(p["W1"], p["b1"]), Relu1=Relu(), Affine2=layer_cls(p["W2"], p["b2"])
        )
        self.last = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last.forward(self.predict(x), t)

    def accuracy(self, x, t):
        return float(np.mean(np.argmax(self.predict(x), axis=1) == t))

    def gradient(self, x, t):
        loss = self.loss(x, t)
        d = self.last.backward()
        for layer in reversed(self.layers.values()):
            d = layer.backward(d)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return loss, {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}


class Adam:
    """Adam; updates the parameter arrays in place, so the layers see it."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = self.v = None
        self.t = 0

    def update(self, params, grads):
        if self.m is None:
            self.m = {k: np.zeros_like(v) for k, v in params.items()}
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t += 1
        lr_t = self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        for k, p in params.items():
            g = grads[k]
            self.m[k] += (1 - self.beta1) * (g - self.m[k])
            self.v[k] += (1 - self.beta2) * (g * g - self.v[k])
            p -= (lr_t * self.m[k] / (np.sqrt(self.v[k]) + self.eps)).astype(p.dtype)


def load_data(seed: int, dtype):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(dtype)
    t = digits.target.astype(np.int64)
    return train_test_split(x, t, test_size=0.25, random_state=seed, stratify=t)


def gradient_check(net: TwoLayerNet, x, t) -> float:
    """Largest relative error between backprop and central differences."""
    _, grads = net.gradient(x, t)
    worst = 0.0
    for name, param in net.params.items():
        numeric = numerical_gradient(lambda _: net.loss(x, t), param)
        scale = np.maximum(np.abs(numeric) + np.abs(grads[name]), 1e-8)
        worst = max(worst, float(np.max(np.abs(numeric - grads[name]) / scale)))
    return worst


def run_epoch(net, opt, x, t, batch_size, rng, bar=None):
    order = rng.permutation(len(x))
    losses = []
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        loss, grads = net.gradient(x[idx], t[idx])
        opt.update(net.params, grads)
        losses.append(loss)
        if bar is not None:
            bar.update(len(idx))
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
    return float(np.mean(losses))


def epoch_seconds(layer_cls, args, x, t, dtype, epochs: int = 3) -> float:
    """Median seconds per epoch of the training loop with the given Affine class."""
    rng = np.random.default_rng(args.seed)
    net = TwoLayerNet(x.shape[1], args.hidden, 10, rng, dtype, layer_cls)
    opt = Adam(args.lr)
    run_epoch(net, opt, x, t, args.batch_size, rng)  # warm-up (compilation, caches)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        run_epoch(net, opt, x, t, args.batch_size, rng)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def plot_history(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, history["loss"], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.set_title("loss")
    ax1.grid(True, alpha=0.3)
    ax2.plot(epochs, history["train_acc"], marker="o", label="train")
    ax2.plot(epochs, history["test_acc"], marker="s", label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_title("accuracy")
    ax2.grid(True, alpha=0.3)
    ax2.legend()
    fig.suptitle("numba-affine: two-layer net on sklearn digits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def training_arguments(description: str) -> argparse.ArgumentParser:
    """The options both digits examples share: the network, its training and its data."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    return parser


def main(argv=None) -> int:
    parser = training_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--plot", metavar="FILE.png", help="write loss and accuracy curves")
    parser.add_argument("--no-timing", action="store_true", help="skip the numpy-layer timing comparison")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    dtype = np.dtype(args.dtype)
    x_train, x_test, t_train, t_test = load_data(args.seed, dtype)
    print(f"digits: {len(x_train)} train / {len(x_test)} test samples, {x_train.shape[1]} features, 10 classes")

    rng = np.random.default_rng(args.seed)
    check_net = TwoLayerNet(x_train.shape[1], 10, 10, np.random.default_rng(args.seed), np.float64)
    err = gradient_check(check_net, x_train[:5].astype(np.float64), t_train[:5])
    print(f"gradient check (5 samples, float64, hidden 10): max relative error {err:.2e}")

    net = TwoLayerNet(x_train.shape[1], args.hidden, 10, rng, dtype)
    opt = Adam(args.lr)
    history = {"loss": [], "train_acc": [], "test_acc": []}
    for epoch in range(1, args.epochs + 1):
        with tqdm(total=len(x_train), desc=f"epoch {epoch}/{args.epochs}", unit="img", leave=False) as bar:
            loss = run_epoch(net, opt, x_train, t_train, args.batch_size, rng, bar)
            train_acc = net.accuracy(x_train, t_train)
            test_acc = net.accuracy(x_test, t_test)
            bar.set_postfix(loss=f"{loss:.3f}", train=f"{train_acc:.3f}", test=f"{test_acc:.3f}")
        tqdm.write(f"epoch {epoch:3d}  loss {loss:.4f}  train acc {train_acc:.4f}  test acc {test_acc:.4f}")
        history["loss"].append(loss)
        history["train_acc"].append(train_acc)
        history["test_acc"].append(test_acc)

    if not args.no_timing:
        ours = epoch_seconds(Affine, args, x_train, t_train, dtype)
        seed = epoch_seconds(SeedAffine, args, x_train, t_train, dtype)
        print(f"epoch time: numba-affine layers {ours * 1e3:.1f} ms, seed numpy layers {seed * 1e3:.1f} ms "
              f"(numpy / numba-affine = {seed / ours:.2f}x)")
    if args.plot:
        plot_history(history, args.plot)
        print(f"plot written to {args.plot}")
    print(f"test accuracy: {history['test_acc'][-1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
