"""Where (source, target) text pairs come from, by ``DataConfig.source``."""

from __future__ import annotations

from s2s_jax.config import DataConfig
from s2s_jax.data import synthetic
from s2s_jax.errors import ConfigError

Pairs = list[tuple[str, str]]


def load_splits(cfg: DataConfig, splits: tuple[str, ...]) -> dict[str, Pairs]:
    """Pairs of each of ``splits`` ("train", "validation", "test")."""
    if cfg.source in synthetic.TASKS:
        train, validation, test = synthetic.generate(cfg.source, cfg.synthetic_sizes, cfg.synthetic_seed)
        every = {"train": train, "validation": validation, "test": test}
        return {s: every[s] for s in splits}
    raise ConfigError(f"data.source {cfg.source!r} is not a synthetic task ({', '.join(synthetic.TASKS)}).")
