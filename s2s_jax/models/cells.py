"""Recurrent cells: LSTM, GRU and the simple tanh RNN.

A cell receives its input already projected, one ``[batch, hidden]`` array
per gate (``x @ W_x + b_x`` split by gate), so callers compute that
projection for all time steps at once outside the time loop (the encoder,
and the decoder when teacher forcing). Inside the loop only the recurrent
matmuls ``h @ W_h`` run.

Gates are kept as separate arrays rather than slices of one
``[batch, gates * hidden]`` array: XLA:CPU does not vectorise a fused
elementwise kernel that slices the minor dimension, and such kernels
dominated the step time: a GRU recurrence with fused inputs and products is 1.4-1.6x slower
than per-gate arrays, in float32 and in bfloat16 (BENCHMARKS.md, "Per-gate products or one
fused product"; a fused recurrent product with per-gate inputs would gain 3-12%).

The gate formulas live in one pure function, :func:`cell_forward`, used by
the Flax cells (one step) and by :mod:`s2s_jax.models.recurrence` (a whole
sequence with a hand-written backward pass). Every product is a
:func:`s2s_jax.models.matmul.dot` in the kernels' dtype; gate pre-activations and
carries are float32 whatever that dtype is, so bfloat16 training keeps float32
recurrent state.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2s_jax.models.matmul import Dense, dot

Carry = Any  # jax.Array, or (c, h) for the LSTM
Gates = tuple[jax.Array, ...]  # one [..., hidden] array per gate

GATES = {"rnn": ("h",), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}


def hidden_of(kind: str, carry: Carry) -> jax.Array:
    """The hidden state h [batch, hidden] of a carry."""
    return carry[1] if kind == "lstm" else carry


def cell_forward(kind: str, kernels: Gates, biases: Gates, carry: Carry, x_proj: Gates,
                 keep: jax.Array | None = None, dtype: Any = jnp.float32) -> tuple[Carry, tuple[Gates, tuple]]:
    """One step of a ``kind`` cell: (new carry, residuals for a backward pass). The residuals
    are (activations, others): one activation [batch, hidden] per gate, in the gates' order
    (the GRU's r, z, n; the LSTM's i, f, g, o; the RNN's h'), and the other values the
    derivative needs (the GRU's h, h_n; the LSTM's h, c, tanh(c'); the RNN's h).

    kernels: per gate [hidden, hidden]; biases: per gate [hidden], or None where
    :func:`fold_biases` has added it to ``x_proj``; x_proj: per gate [batch, hidden]; keep:
    [batch] bool, False leaves the row's carry unchanged (PAD); dtype: the recurrent products'
    compute dtype.
      rnn:  h' = tanh(x + W h + b)                                         (Elman 1990)
      gru:  r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r * h_n),
            h' = (1 - z) n + z h   (Cho et al. 2014, eqs. 5-8, reset gate after W_h as in cuDNN)
      lstm: i, f, o = s(.), g = tanh(.), c' = f c + i g, h' = o tanh(c')   (Hochreiter & Schmidhuber 1997)
    """
    h_prev = hidden_of(kind, carry)
    hp = tuple(dot(h_prev, k, dtype) if b is None else dot(h_prev, k, dtype) + b
               for k, b in zip(kernels, biases, strict=True))
    x = tuple(v.astype(jnp.float32) for v in x_proj)
    if kind == "gru":
        r = jax.nn.sigmoid(x[0] + hp[0])
        z = jax.nn.sigmoid(x[1] + hp[1])
        n = jnp.tanh(x[2] + r * hp[2])
        new, res = (1.0 - z) * n + z * h_prev, ((r, z, n), (h_prev, hp[2]))
    elif kind == "lstm":
        c_prev = carry[0]
        i, f, o = (jax.nn.sigmoid(x[g] + hp[g]) for g in (0, 1, 3))
        g = jnp.tanh(x[2] + hp[2])
        c_new = f * c_prev + i * g
        tc = jnp.tanh(c_new)
        new, res = (c_new, o * tc), ((i, f, g, o), (h_prev, c_prev, tc))
    else:
        h_new = jnp.tanh(x[0] + hp[0])
        new, res = h_new, ((h_new,), (h_prev,))
    if keep is not None:
        new = select_carry(keep, new, carry)
    return new, res


# How many leading gates add their recurrent bias outside any product with another gate
# (x + W h + b): all but the GRU's candidate, whose bias is inside r * (W h + b).
FOLDABLE = {"rnn": 1, "gru": 2, "lstm": 4}


def fold_biases(kind: str, biases: Gates, x_proj: Gates) -> tuple[Gates, tuple[jax.Array | None, ...]]:
    """(x_proj with each foldable gate's recurrent bias added, the biases with None in their
    place), for :func:`cell_forward`: the same pre-activations, the bias added once over all
    steps rather than inside the loop. x_proj: per gate [..., hidden]; biases: per gate [hidden]."""
    n = FOLDABLE[kind]
    return (tuple(x + b for x, b in zip(x_proj[:n], biases[:n], strict=True)) + tuple(x_proj[n:]),
            (None,) * n + tuple(biases[n:]))


def select_carry(keep: jax.Array, new: Carry, old: Carry) -> Carry:
    """Per row, ``new`` where ``keep`` [batch] is true, else ``old``: PAD steps leave states alone."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(keep[:, None], n, o), new, old)


class GateProjection(nn.Module):
    """x [..., in] -> one ``x @ W_g (+ b_g)`` [..., hidden] float32 per gate."""

    gates: tuple[str, ...]
    hidden_size: int
    use_bias: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> Gates:
        return tuple(Dense(self.hidden_size, use_bias=self.use_bias, dtype=self.dtype, name=g)(x)
                     for g in self.gates)


def add_gates(a: Gates, b: Gates) -> Gates:
    return tuple(x + y.astype(x.dtype) for x, y in zip(a, b, strict=True))


class RecurrentCell(nn.Module):
    """The recurrent weights of one layer and its single step.

    Parameters ``kernel`` [gates, hidden, hidden] and ``bias`` [gates, hidden]. An LSTM's
    forget gate adds the constant ``forget_bias`` to its learned bias, so it starts remembering
    (Gers et al. 2000; Jozefowicz et al. 2015, sec. 2.2): a constant rather than an initial
    value, so that it holds whatever initialiser the parameters get (``init_scale``).
    """

    kind: str
    hidden_size: int
    dtype: Any = jnp.float32
    forget_bias: float = 0.0

    @property
    def gates(self) -> tuple[str, ...]:
        return GATES[self.kind]

    @nn.compact
    def weights(self) -> tuple[Gates, Gates]:
        """(kernels, biases): per gate [hidden, hidden] and [hidden], float32. The products cast
        the kernels to ``dtype`` themselves, so their gradients accumulate in float32."""
        g, h = len(self.gates), self.hidden_size
        init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1,
                                                batch_axis=(0,))
        kernel = self.param("kernel", init, (g, h, h))
        bias = self.param("bias", nn.initializers.zeros, (g, h))
        biases = tuple(bias[i] for i in range(g))
        if self.kind == "lstm" and self.forget_bias:
            biases = (biases[0], biases[1] + self.forget_bias, *biases[2:])
        return tuple(kernel[i] for i in range(g)), biases

    def __call__(self, carry: Carry, x_proj: Gates) -> Carry:
        kernels, biases = self.weights()
        return cell_forward(self.kind, kernels, biases, carry, x_proj, dtype=self.dtype)[0]

    def initial_carry(self, batch: int) -> Carry:
        z = jnp.zeros((batch, self.hidden_size), jnp.float32)
        return (z, z) if self.kind == "lstm" else z

    def output(self, carry: Carry) -> jax.Array:
        return hidden_of(self.kind, carry)
