"""The shape checks of the public functions, one implementation for every door.

The checks are ``register_jitable`` functions: plain Python when the Python
functions (:mod:`numba_affine.api`) call them, compiled into users' jitted
code by the overloads (:mod:`numba_affine.jitted`). They raise
:class:`ShapeError`, a ``ValueError`` that carries a rule code and the
shapes as tuples and builds its message in Python, so a Python call and a
jitted one say the same thing, and compiled code builds no strings.
"""

from __future__ import annotations

from numba.extending import register_jitable

# ---------------------------------------------------------------- errors


#: ShapeError codes: which rule a call broke.
X_WIDTH, BIAS, DOUT_BACKWARD, DOUT_DX, DOUT_DW, DOUT_NDIM, W_NDIM, X_NDIM, OUT_SHAPE, NEEDS_OUT, SHARES = range(11)

#: Argument names, by the index compiled code passes for them.
NAMES = ("out", "dx_out", "dW_out", "db_out", "x", "W", "b", "dout")
OUT, DX_OUT, DW_OUT, DB_OUT, X, W_, B, DOUT = range(len(NAMES))


def _flattened(shape: tuple) -> tuple:
    """x's shape as the (N, D) the functions compute with."""
    if len(shape) == 1:
        return (1, shape[0])
    width = 1
    for n in shape[1:]:
        width *= n
    return (shape[0], width)


def _dtype(d) -> str:
    """A dtype as numpy names it; compiled code passes its item size (4 or 8)."""
    return {4: "float32", 8: "float64"}.get(d, str(d)) if isinstance(d, int) else str(d)


class ShapeError(ValueError):
    """Shapes that do not fit: a rule code and the shapes, as tuples.

    Compiled code raises it with integers and tuples only (no strings are
    built there); the message is formatted here, the same for every door.
    Argument names are indices into :data:`NAMES`; ``x`` and ``dout`` are
    how the door names those two (:mod:`numba_affine.dask` calls them X
    and dY).
    """

    def __init__(self, *args, x: str = "x", dout: str = "dout"):
        super().__init__(*args)
        self.x, self.dout = x, dout

    def __str__(self) -> str:
        code, *shapes = self.args
        xn, dn = self.x, self.dout
        if code == X_WIDTH:
            x, W = shapes
            x2 = _flattened(x)
            flat = f" (flattened to {x2})" if len(x) > 2 else ""
            return (f"{xn} has shape {x}{flat} but W has shape {W}: "
                    f"{xn}'s feature width {x2[1]} must equal W.shape[0] = {W[0]}")
        if code == BIAS:
            b, W = shapes
            return f"b has shape {b} but W has shape {W}: expected b of shape ({W[1]},)"
        if code == DOUT_BACKWARD:
            dout, x, W = shapes
            want = f"({W[1]},)" if len(x) == 1 else f"({_flattened(x)[0]}, {W[1]})"
            return f"{dn} has shape {dout} but {xn} has shape {x} and W has shape {W}: expected {dn} of shape {want}"
        if code == DOUT_DX:
            dout, W = shapes
            want = f"({W[1]},)" if len(dout) == 1 else f"(N, {W[1]})"
            return f"{dn} has shape {dout} but W has shape {W}: expected {dn} of shape {want}"
        if code == DOUT_DW:
            dout, x = shapes
            if len(dout) not in (1, 2):
                want = f"({_flattened(x)[0]}, H)"
            else:
                want = f"({dout[-1]},)" if len(x) == 1 else f"({_flattened(x)[0]}, {dout[-1]})"
            return f"{dn} has shape {dout} but {xn} has shape {x}: expected {dn} of shape {want}"
        if code == DOUT_NDIM:
            (dout,) = shapes
            return f"{dn} must have shape (N, H) or (H,), got shape {dout}"
        if code == W_NDIM:
            (W,) = shapes
            return f"W must be 2-D with shape (D, H), got shape {W}"
        if code == X_NDIM:
            return f"{xn} must have at least 1 dimension (one sample), got shape ()"
        if code == OUT_SHAPE:
            name, out, out_dtype, shape, dtype = shapes
            return (f"{NAMES[name]} has shape {out} and dtype {_dtype(out_dtype)} but the result has "
                    f"shape {shape} and dtype {_dtype(dtype)}")
        if code == NEEDS_OUT:
            (name,) = shapes
            return f"accumulate=True needs {NAMES[name]}= (the array to add into)"
        if code == SHARES:
            first, second = shapes
            if first <= DB_OUT and second <= DB_OUT:
                return f"{NAMES[first]} shares memory with {NAMES[second]}; pass separate arrays"
            return f"{NAMES[first]} shares memory with {NAMES[second]}; pass a separate array"
        return f"shapes {shapes} do not fit (rule {code})"

    def __reduce__(self):  # pickled by Dask's workers: keep the class, not just ValueError
        return (_shape_error, (self.args, self.x, self.dout))


def _shape_error(args: tuple, x: str, dout: str) -> ShapeError:
    return ShapeError(*args, x=x, dout=dout)


# ---------------------------------------------------------------- checks (Python and compiled)


@register_jitable
def feature_width(x):
    """x's feature width: its length if 1-D, else the product of its trailing dimensions."""
    if x.ndim == 1:
        return x.shape[0]
    width = 1
    for n in x.shape[1:]:
        width *= n
    return width


@register_jitable
def check_weights(W):
    """W (D, H)."""
    if W.ndim != 2:
        raise ShapeError(W_NDIM, W.shape)


@register_jitable
def check_parameters(W, b):
    """W (D, H) and b (H,)."""
    check_weights(W)
    if b.ndim != 1 or b.shape[0] != W.shape[1]:
        raise ShapeError(BIAS, b.shape, W.shape)


@register_jitable
def check_forward(x, W, b, has_bias):
    """x (D,), (N, D) or (N, d1, ...) with d1*... = D; W (D, H); b (H,) when ``has_bias``."""
    if has_bias:
        check_parameters(W, b)
    else:
        check_weights(W)
    if x.ndim == 0:
        raise ShapeError(X_NDIM, x.shape)
    if feature_width(x) != W.shape[0]:
        raise ShapeError(X_WIDTH, x.shape, W.shape)


@register_jitable
def check_backward(dout, x, W):
    """As :func:`check_forward`, and dout (N, H) ((H,) after a 1-D x)."""
    check_forward(x, W, W, False)
    H = W.shape[1]
    if x.ndim == 1:
        ok = dout.ndim == 1 and dout.shape[0] == H
    else:
        ok = dout.ndim == 2 and dout.shape[0] == x.shape[0] and dout.shape[1] == H
    if not ok:
        raise ShapeError(DOUT_BACKWARD, dout.shape, x.shape, W.shape)


@register_jitable
def check_dx(dout, W):
    """W (D, H); dout (N, H) or (H,)."""
    check_weights(W)
    if dout.ndim == 0 or dout.ndim > 2 or dout.shape[dout.ndim - 1] != W.shape[1]:
        raise ShapeError(DOUT_DX, dout.shape, W.shape)


@register_jitable
def check_dw(x, dout):
    """x as in the forward; dout (N, H) ((H,) after a 1-D x)."""
    if x.ndim == 0:
        raise ShapeError(X_NDIM, x.shape)
    if x.ndim == 1:
        ok = dout.ndim == 1
    else:
        ok = dout.ndim == 2 and dout.shape[0] == x.shape[0]
    if not ok:
        raise ShapeError(DOUT_DW, dout.shape, x.shape)


@register_jitable
def check_db(dout):
    """dout (N, H) or (H,)."""
    if dout.ndim == 0 or dout.ndim > 2:
        raise ShapeError(DOUT_NDIM, dout.shape)


@register_jitable
def check_out(out, name, shape, accumulate):
    """``out`` (absent: ``None``) has the result's ``shape``; ``accumulate`` needs it."""
    if out is None:
        if accumulate:
            raise ShapeError(NEEDS_OUT, name)
    elif out.shape != shape:
        raise ShapeError(OUT_SHAPE, name, out.shape, out.itemsize, shape, out.itemsize)
