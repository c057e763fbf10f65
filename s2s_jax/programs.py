"""The console programs of ``[project.scripts]`` that run XLA: each first re-executes its
interpreter with tuned malloc (:mod:`s2s_jax.hugepages`), turns on the persistent compilation
cache (:mod:`s2s_jax.compilation_cache`), then runs its command from :mod:`s2s_jax.cli`. The
libraries are imported after the re-execution, which would otherwise import them (several
seconds) twice."""

from __future__ import annotations

from s2s_jax.hugepages import reexec_with_huge_pages


def start_program() -> None:
    """What every program that runs XLA does first: re-execute with tuned malloc, then turn on
    the persistent compilation cache (the experiment scripts call it too)."""
    reexec_with_huge_pages()
    from s2s_jax.compilation_cache import use_compilation_cache
    use_compilation_cache()


def train() -> None:
    """``s2s-train``: :func:`s2s_jax.cli.train_main`."""
    start_program()
    from s2s_jax.cli import train_main
    train_main()


def evaluate() -> None:
    """``s2s-eval``: :func:`s2s_jax.cli.eval_main`."""
    start_program()
    from s2s_jax.cli import eval_main
    eval_main()


def translate() -> None:
    """``s2s-translate``: :func:`s2s_jax.cli.translate_main`."""
    start_program()
    from s2s_jax.cli import translate_main
    translate_main()
