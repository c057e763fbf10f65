"""``model.dtype="auto"``: what it resolves to, and that a run records the concrete dtype."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp

import s2s_jax as s2s
from s2s_jax.loop import run
from s2s_jax.precision import auto_dtype, compute_dtype, cpu_bfloat16_flags, resolve_dtype


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_bfloat16_flags(str(info)) == ["amx_bf16", "avx512_bf16"]
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_bfloat16_flags(str(info)) == []
    assert cpu_bfloat16_flags(str(tmp_path / "missing")) == []


def test_auto_is_bfloat16_only_where_the_hardware_has_bfloat16_units():
    assert auto_dtype("cpu", ["avx512_bf16"])[0] == "bfloat16"
    assert auto_dtype("cpu", ["amx_bf16", "avx512_bf16"])[0] == "bfloat16"
    dtype, reason = auto_dtype("cpu", [])
    assert dtype == "float32" and "amx_bf16" in reason
    assert auto_dtype("gpu", [])[0] == auto_dtype("tpu", [])[0] == "bfloat16"
    assert compute_dtype("auto") == jnp.dtype(auto_dtype()[0])
    assert compute_dtype("float32") == jnp.float32 and compute_dtype("bfloat16") == jnp.bfloat16


def test_resolve_replaces_auto_and_nothing_else():
    cfg = s2s.get_preset("copy")
    assert resolve_dtype(cfg) is cfg
    assert resolve_dtype(cfg.replace(model={"dtype": "auto"})).model.dtype == auto_dtype()[0]


def test_a_run_records_the_dtype_auto_meant(tmp_path):
    cfg = s2s.get_preset("copy").replace(
        model={"dtype": "auto", "hidden_size": 16, "embed_dim": 8},
        data={"synthetic_sizes": (64, 8, 8), "batch_size": 32},
        train={"num_steps": 2, "eval_every": 2, "checkpoint_every": 2, "log_every": 2, "quiet": True})
    run(cfg, str(tmp_path))
    with open(os.path.join(tmp_path, "config.json")) as f:
        assert json.load(f)["model"]["dtype"] == auto_dtype()[0]
