"""The programs' persistent compilation cache: the user's cache directory, the caller's choice
stands, a directory that cannot be made or written leaves it off with one warning, and a program
compiled once is loaded, not compiled, with the same results."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from s2s_jax.compilation_cache import MAX_BYTES, default_cache_dir, use_compilation_cache


def test_the_default_directory_is_the_users_cache(tmp_path):
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "s2s_jax" / "xla")
    assert default_cache_dir({}) == os.path.join(os.path.expanduser("~"), ".cache", "s2s_jax", "xla")


@pytest.fixture
def no_cache():
    """This process without a compilation cache (the tests' own, from tests/conftest.py, is set
    aside), restored afterwards."""
    saved = {name: getattr(jax.config, name) for name in (
        "jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_compilation_cache_max_size",
        "jax_persistent_cache_min_compile_time_secs")}
    jax.config.update("jax_compilation_cache_dir", None)
    jax_cache.reset_cache()
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    jax_cache.reset_cache()


def test_a_callers_directory_or_switch_stands(tmp_path, no_cache, caplog):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    assert use_compilation_cache(env) == str(tmp_path / "mine")
    assert jax.config.jax_compilation_cache_max_size == -1
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_enable_compilation_cache", False)
    assert use_compilation_cache(env) is None
    assert jax.config.jax_compilation_cache_dir is None
    jax.config.update("jax_enable_compilation_cache", True)
    (tmp_path / "file").write_text("")  # a directory that cannot be created: no cache, one warning naming it
    assert use_compilation_cache({"XDG_CACHE_HOME": str(tmp_path / "file")}) is None
    assert jax.config.jax_compilation_cache_dir is None
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"Compiled programs are not cached: [Errno 20] Not a directory: '{tmp_path / 'file'}")


def test_a_directory_that_cannot_be_written_leaves_the_cache_off(tmp_path, no_cache, caplog, monkeypatch):
    path = tmp_path / "s2s_jax" / "xla"
    path.mkdir(parents=True)
    # os.access as it answers an unprivileged user for a read-only directory (the tests may run
    # as root, who may write anywhere).
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    assert use_compilation_cache({"XDG_CACHE_HOME": str(tmp_path)}) is None
    assert jax.config.jax_compilation_cache_dir is None
    assert [r.getMessage() for r in caplog.records] == [f"Compiled programs are not cached: {path} cannot be written"]


def test_a_program_compiled_once_is_loaded_from_the_cache(tmp_path, no_cache):
    path = use_compilation_cache({"XDG_CACHE_HOME": str(tmp_path)})
    assert path == str(tmp_path / "s2s_jax" / "xla")
    assert jax.config.jax_compilation_cache_max_size == MAX_BYTES
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    hits = []

    def listen(event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    def program(x):
        return jnp.tanh(x @ x.T).sum(axis=1) * 0.37

    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 7)), jnp.float32)
    jax.monitoring.register_event_listener(listen)
    try:
        first = jax.jit(program)(x)
        assert hits == [] and any(f.endswith("-cache") for f in os.listdir(path))
        jax.clear_caches()  # as a new process starts: nothing compiled in memory
        second = jax.jit(program)(x)
    finally:
        jax.monitoring.unregister_event_listener(listen)
    assert hits == ["/jax/compilation_cache/cache_hits"]
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
