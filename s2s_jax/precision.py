"""``model.dtype="auto"``: bfloat16 matmuls where the hardware has bfloat16 units, else float32.

Accelerators (GPU, TPU) and CPUs with AMX-BF16 or AVX512-BF16 run bfloat16 x bfloat16 ->
float32 products several times faster than float32 ones (BENCHMARKS.md); other CPUs
emulate them and are faster in float32. A run resolves "auto" once, when it starts, and
records the concrete dtype in its config, so its checkpoints, the Translator and
``s2s-eval`` use the precision it was trained in wherever they run.
"""

from __future__ import annotations

import functools
import logging
import os

import jax
import jax.numpy as jnp

from s2s_jax.config import Config

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bfloat16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The CPU's bfloat16 features among :data:`BF16_CPU_FLAGS` (``lscpu`` shows the same flags)."""
    if not os.path.exists(cpuinfo):
        return []
    with open(cpuinfo) as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                return [f for f in BF16_CPU_FLAGS if f in flags]
    return []


def auto_dtype(backend: str | None = None, flags: list[str] | None = None) -> tuple[str, str]:
    """(dtype, reason) that "auto" means on this machine."""
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return "bfloat16", f"the {backend} backend"
    flags = cpu_bfloat16_flags() if flags is None else flags
    if flags:
        return "bfloat16", f"the CPU has {', '.join(flags)}"
    return "float32", f"the CPU has none of {', '.join(BF16_CPU_FLAGS)}"


@functools.cache
def _auto_here() -> str:
    return auto_dtype()[0]


def compute_dtype(dtype: str) -> jnp.dtype:
    """The matmul dtype a model config's ``dtype`` names ("auto" resolved on this machine)."""
    return jnp.dtype(_auto_here() if dtype == "auto" else dtype)


def resolve_dtype(cfg: Config) -> Config:
    """``cfg`` with ``model.dtype="auto"`` replaced by what it means here (logged); other
    configs are returned as they are."""
    if cfg.model.dtype != "auto":
        return cfg
    dtype, reason = auto_dtype()
    log.info("model.dtype auto -> %s (%s).", dtype, reason)
    return cfg.replace(model={"dtype": dtype})
