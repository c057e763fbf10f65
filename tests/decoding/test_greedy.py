"""Greedy decoding against a step-by-step Python loop over the single-step decoder API."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from benchmarks.hlo_dots import inventory
from s2s_jax.decoding import greedy_decode
from s2s_jax.models.seq2seq import init_decoder
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID
from tests.decoding.helpers import SRC, assert_eos_then_pad, in_bfloat16, lengths, standard_model

MAX_LEN = 8


def _python_greedy(model, params, src: np.ndarray, max_len: int) -> np.ndarray:
    """The reference: one ``step`` per position, argmax, EOS forced at the last position,
    then PAD once a row has ended."""
    state, step, _ = init_decoder(model, params, src)
    out = np.full((len(src), max_len), PAD_ID, np.int32)
    prev = np.full(len(src), BOS_ID, np.int32)
    done = np.zeros(len(src), bool)
    for t in range(max_len):
        log_probs, state = step(state, prev)
        nxt = np.argmax(np.asarray(log_probs), axis=-1) if t < max_len - 1 else np.full(len(src), EOS_ID)
        nxt = np.where(done, PAD_ID, nxt)
        out[:, t] = nxt
        done |= nxt == EOS_ID
        prev = nxt.astype(np.int32)
    return out


def test_greedy_matches_single_step_loop():
    model, params = standard_model()
    tokens = np.asarray(greedy_decode(model, params, SRC, MAX_LEN))
    np.testing.assert_array_equal(tokens, _python_greedy(model, params, SRC, MAX_LEN))
    assert_eos_then_pad(tokens)
    n = lengths(tokens)
    assert np.any(n < MAX_LEN) and np.any(n == MAX_LEN), "needs rows that stop early and rows cut at max_len"


def _ynn_fusions(hlo: str) -> list[str]:
    """The bodies of the compiled program's YNNPACK fusions, as HLO text."""
    bodies = set(re.findall(r"^%(\S+) .*\{$", hlo, re.M))
    called = set(re.findall(r"calls=%([\w.\-]+), [^\n]*__ynn_fusion", hlo))
    assert called <= bodies
    return [hlo.split(f"%{body} ", 1)[1].split("\n}", 1)[0] for body in called]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_decoding_hands_only_its_dots_to_ynnpack(dtype):
    """Decoding keeps YNNPACK for its dots, each a call of its own, and nothing else: no
    reduction of the log-softmax or the argmax (decoding/common.py). A bfloat16 model's products
    are bfloat16 x bfloat16 -> float32."""
    model, params = standard_model()
    model = in_bfloat16(model) if dtype == "bfloat16" else model
    plain = jax.jit(greedy_decode.__wrapped__, static_argnames=("model", "max_len"))
    if not _ynn_fusions(plain.lower(model, params, SRC, MAX_LEN).compile().as_text()):
        pytest.skip("this XLA build hands nothing to YNNPACK")
    hlo = greedy_decode.lower(model, params, SRC, MAX_LEN).compile().as_text()
    if dtype == "bfloat16":
        dots = inventory(hlo, trip_count=MAX_LEN)
        assert {(d["where"], d["operands"], d["result"]) for d in dots if d["operands"] == "bf16xbf16"} == {
            ("ynnpack", "bf16xbf16", "f32")}
    fusions = _ynn_fusions(hlo)
    assert fusions and all(" dot(" in body and " reduce(" not in body for body in fusions)
