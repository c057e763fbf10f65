"""The programs' persistent compilation cache: XLA programs kept on disk once compiled, so a
resumed run, a rerun, or a second evaluation of a run loads its programs instead of compiling
them again (a `multi30k` run compiles one training step per bucket pair, 4-5 s each on a
2-core CPU; BENCHMARKS.md).

This is JAX's own cache (``jax_compilation_cache_dir``). Its keys hold the program, the
compiler options and flags, the JAX version and the devices' topology, whose fingerprint on
CPU covers the instruction set XLA:CPU compiles for, so machines that share a home directory
do not load each other's code. A directory given in ``JAX_COMPILATION_CACHE_DIR`` is used as
it is, and ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import jax

log = logging.getLogger("s2s_jax")

MAX_BYTES = 2 << 30  # least recently used programs are removed beyond this


def default_cache_dir(env: Mapping[str, str] = os.environ) -> str:
    """``$XDG_CACHE_HOME/s2s_jax/xla``, ``~/.cache/s2s_jax/xla`` when it is unset."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "s2s_jax", "xla")


def use_compilation_cache(env: Mapping[str, str] = os.environ) -> str | None:
    """Turn on JAX's persistent compilation cache for this process, before it compiles anything,
    in :func:`default_cache_dir` with at most :data:`MAX_BYTES`, unless the caller chose a
    directory or turned the cache off. Returns the directory in use, None for none: a directory
    that cannot be created or written leaves the cache off with one warning (JAX would warn at
    every program it failed to write), and the program runs on."""
    if not jax.config.jax_enable_compilation_cache:
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    path = default_cache_dir(env)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        log.warning("Compiled programs are not cached: %s", e)
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        log.warning("Compiled programs are not cached: %s cannot be written", path)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
