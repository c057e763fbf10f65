"""Recurrent cells: LSTM, GRU and the simple tanh RNN.

A cell receives its input already projected, one ``[batch, hidden]`` array
per gate (``x @ W_x + b_x`` split by gate), so callers compute that
projection for all time steps at once outside the scan (the encoder, and the
decoder when teacher forcing). Inside the scan only the recurrent matmuls
``h @ W_h`` run.

Gates are kept as separate arrays rather than slices of one
``[batch, gates * hidden]`` array: XLA:CPU does not vectorise a fused
elementwise kernel that slices the minor dimension, and such kernels
dominated the step time (see BENCHMARKS.md).

Gate pre-activations and carries are float32 whatever ``dtype`` the matmuls
run in, so bfloat16 training keeps float32 recurrent state.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Carry = Any  # jax.Array, or (c, h) for the LSTM
Gates = tuple[jax.Array, ...]  # one [..., hidden] array per gate


class GateProjection(nn.Module):
    """x [..., in] -> one ``x @ W_g (+ b_g)`` [..., hidden] per gate."""

    gates: tuple[str, ...]
    hidden_size: int
    use_bias: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> Gates:
        return tuple(nn.Dense(self.hidden_size, use_bias=self.use_bias, dtype=self.dtype, name=g)(x)
                     for g in self.gates)


def add_gates(a: Gates, b: Gates) -> Gates:
    return tuple(x + y.astype(x.dtype) for x, y in zip(a, b, strict=True))


class RecurrentCell(nn.Module):
    hidden_size: int
    dtype: Any = jnp.float32
    gates = ("h",)

    def recurrent(self, h: jax.Array) -> Gates:
        """``h @ W_h + b_h`` per gate, float32."""
        proj = GateProjection(self.gates, self.hidden_size, dtype=self.dtype, name="recurrent")(h.astype(self.dtype))
        return tuple(p.astype(jnp.float32) for p in proj)

    def initial_carry(self, batch: int) -> Carry:
        return jnp.zeros((batch, self.hidden_size), jnp.float32)

    @staticmethod
    def output(carry: Carry) -> jax.Array:
        """The hidden state h of a carry: [batch, hidden]."""
        return carry


class SimpleRNNCell(RecurrentCell):
    """Elman RNN: h' = tanh(W_x x + W_h h + b)."""

    gates = ("h",)

    @nn.compact
    def __call__(self, carry: Carry, x_proj: Gates) -> Carry:
        (x,), (h,) = x_proj, self.recurrent(carry)
        return jnp.tanh(x.astype(jnp.float32) + h)


class GRUCell(RecurrentCell):
    """GRU (Cho et al. 2014, eqs. 5-8) in the cuDNN form, reset gate applied after W_h:
    r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h."""

    gates = ("r", "z", "n")

    @nn.compact
    def __call__(self, carry: Carry, x_proj: Gates) -> Carry:
        xr, xz, xn = (x.astype(jnp.float32) for x in x_proj)
        hr, hz, hn = self.recurrent(carry)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        return (1.0 - z) * n + z * carry


class LSTMCell(RecurrentCell):
    """LSTM (Hochreiter & Schmidhuber 1997, with forget gate): gates i, f, g, o;
    c' = f c + i g, h' = o tanh(c')."""

    gates = ("i", "f", "g", "o")

    @nn.compact
    def __call__(self, carry: Carry, x_proj: Gates) -> Carry:
        c, h = carry
        i, f, g, o = (x.astype(jnp.float32) + r for x, r in zip(x_proj, self.recurrent(h), strict=True))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return c, jax.nn.sigmoid(o) * jnp.tanh(c)

    def initial_carry(self, batch: int) -> Carry:
        z = jnp.zeros((batch, self.hidden_size), jnp.float32)
        return z, z

    @staticmethod
    def output(carry: Carry) -> jax.Array:
        return carry[1]


CELLS: dict[str, type[RecurrentCell]] = {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}


def cell_class(kind: str) -> type[RecurrentCell]:
    return CELLS[kind]


def select_carry(keep: jax.Array, new: Carry, old: Carry) -> Carry:
    """Per row, ``new`` where ``keep`` [batch] is true, else ``old``: PAD steps leave states alone."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(keep[:, None], n, o), new, old)
