"""Where (source, target) text pairs come from, by ``DataConfig.source``.

- a synthetic task name (copy, reverse, sort, addition, dates): generated in memory;
- a directory of line-aligned files ``{split}.{src_lang}`` / ``{split}.{tgt_lang}``
  (Multi30k: ``train.de``, ``val.de``, ``test2016.de`` ... with
  ``data.splits=("train", "val", "test2016")``), or, when ``src_lang`` and
  ``tgt_lang`` are both empty, of ``{split}.tsv`` files of ``source<TAB>target`` lines;
- a ``.tsv`` file: a single split named ``train``; take the held-out splits as TFDS
  slices of it, e.g. ``--data.splits 'train[:98%]' 'train[98%:99%]' 'train[99%:]'``
  (contiguous ranges of the file: shuffle a sorted file first);
- ``tfds:NAME`` for a TFDS catalog dataset whose examples are keyed by language,
  e.g. ``tfds:wmt14_translate/de-en`` with ``src_lang=de, tgt_lang=en``.

Local files and catalog datasets are both prepared by TFDS into ``data.data_dir``
(array_record; "" is TFDS's default, ``~/tensorflow_datasets``) once and read back
from there afterwards; see :mod:`s2s_jax.data.tfds_text` for the reading rules.
A split name may be any TFDS split expression on the local or catalog splits
(``train[:1000]``). The real catalog commands (they download, so run them where
the network is reachable, once, e.g. on one host before a multi-host run)::

    s2s-train --workdir runs/wmt14 --data.source tfds:wmt14_translate/de-en \\
        --data.src-lang de --data.tgt-lang en --data.data-dir ~/tensorflow_datasets \\
        --data.tokenizer sentencepiece --data.vocab-size 32000
    s2s-train --workdir runs/ted --data.source tfds:ted_hrlr_translate/pt_to_en \\
        --data.src-lang pt --data.tgt-lang en --data.tokenizer sentencepiece

or in Python: ``tfds.builder("wmt14_translate/de-en", data_dir=D).download_and_prepare(
file_format="array_record")``. Datasets that need files fetched by hand read them
from ``{data_dir}/downloads/manual`` (TFDS's manual directory).

``DataConfig.splits`` names the train, validation and test splits; the rest of
the code knows them by these roles: "train", "validation", "test".
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from s2s_jax.config import DataConfig
from s2s_jax.data import synthetic
from s2s_jax.data.text_files import Pairs, SplitFiles
from s2s_jax.errors import ConfigError, DataError

# TFDS takes seconds to import: only the file and catalog sources import it (and
# s2s_jax.data.tfds_text, built on it), when used.
if TYPE_CHECKING:
    import tensorflow_datasets as tfds

ROLES = ("train", "validation", "test")
TFDS_PREFIX = "tfds:"


def split_names(cfg: DataConfig, roles: tuple[str, ...] = ROLES) -> dict[str, str]:
    """Role ("train", "validation", "test") -> the split name in ``cfg.splits``."""
    return {r: cfg.splits[ROLES.index(r)] for r in roles}


def _base(split: str) -> str:
    """The split a TFDS split expression reads: ``train[:98%]`` -> ``train``."""
    return split.split("[", 1)[0]


def local_files(cfg: DataConfig, splits: tuple[str, ...]) -> list[SplitFiles]:
    """The files holding ``splits`` of the local source ``cfg.source`` (a directory or a .tsv file)."""
    path = cfg.source
    if os.path.isfile(path):
        if not path.endswith(".tsv"):
            raise ConfigError(f"data.source {path!r} is a file but not a .tsv file of source<TAB>target lines.")
        bad = [s for s in splits if _base(s) != "train"]
        if bad:
            raise ConfigError(f"data.splits names {bad[0]!r} but the single file {path} is split 'train'; "
                              "use slices such as 'train[:98%]' 'train[98%:99%]' 'train[99%:]'.")
        return [SplitFiles("train", path)]
    if not os.path.isdir(path):
        raise DataError(f"data.source {path!r} is no synthetic task ({', '.join(synthetic.TASKS)}), "
                        f"no directory, no .tsv file and not {TFDS_PREFIX}NAME.")
    if bool(cfg.src_lang) != bool(cfg.tgt_lang):
        raise ConfigError("data.src_lang and data.tgt_lang must both be set (line-aligned files) "
                          "or both be empty ({split}.tsv files).")
    out = []
    for split in dict.fromkeys(_base(s) for s in splits):
        stem = os.path.join(path, split)
        if cfg.src_lang:
            out.append(SplitFiles(split, f"{stem}.{cfg.src_lang}", f"{stem}.{cfg.tgt_lang}"))
        else:
            out.append(SplitFiles(split, f"{stem}.tsv"))
    return out


def catalog_builder(cfg: DataConfig) -> tfds.core.DatasetBuilder:
    """The TFDS catalog dataset of ``cfg.source`` (``tfds:NAME``), prepared into ``cfg.data_dir``."""
    import tensorflow_datasets as tfds

    name = cfg.source[len(TFDS_PREFIX):]
    if not cfg.src_lang or not cfg.tgt_lang:
        raise ConfigError(f"data.src_lang and data.tgt_lang must name the languages of {cfg.source!r}.")
    try:
        builder = tfds.builder(name, data_dir=cfg.data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"data.source {cfg.source!r}: TFDS has no dataset named {name!r}.") from None
    keys = list(builder.info.features.keys())
    for field in ("src_lang", "tgt_lang"):
        if getattr(cfg, field) not in keys:
            raise ConfigError(f"data.{field} is {getattr(cfg, field)!r} but the examples of {name} "
                              f"have the keys {', '.join(keys)}.")
    builder.download_and_prepare(file_format="array_record")
    return builder


def load_splits(cfg: DataConfig, roles: tuple[str, ...]) -> dict[str, Pairs]:
    """Pairs of each role in ``roles`` ("train", "validation", "test")."""
    if cfg.source in synthetic.TASKS:
        train, validation, test = synthetic.generate(cfg.source, cfg.synthetic_sizes, cfg.synthetic_seed)
        every = {"train": train, "validation": validation, "test": test}
        return {r: every[r] for r in roles}
    from s2s_jax.data.tfds_text import prepare_parallel_text, read_data_source

    names = split_names(cfg, roles)
    if cfg.source.startswith(TFDS_PREFIX):
        builder, keys = catalog_builder(cfg), (cfg.src_lang, cfg.tgt_lang)
    else:
        files = local_files(cfg, cfg.splits)  # all of them, so that one prepared dataset serves every role
        builder, keys = prepare_parallel_text(files, cfg.data_dir), ("source", "target")
    available = builder.info.splits.keys()
    out = {}
    for role, split in names.items():
        if _base(split) not in available:
            raise ConfigError(f"data.splits names {split!r} for {role}, but {cfg.source} has the splits "
                              f"{', '.join(sorted(available))}.")
        out[role] = read_data_source(builder.as_data_source(split), *keys)
    return out
