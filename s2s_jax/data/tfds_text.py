"""Local parallel text as a TFDS dataset: prepared once into ``data_dir``
(array_record files, no TensorFlow needed) and read back in file order with
``builder.as_data_source(split)``.

The files are read, and refused, by the rules of :mod:`s2s_jax.data.text_files`.

Caching: the dataset's config name is a hash of the files' absolute paths,
sizes and modification times, so editing, replacing or touching a file
prepares it afresh and a stale cache is never read. Bump
``ParallelText.VERSION`` when the reading rules change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence

import tensorflow_datasets as tfds

from s2s_jax.data.text_files import Pairs, SplitFiles, read_pairs, validate
from s2s_jax.errors import DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class ParallelTextConfig(tfds.core.BuilderConfig):
    files: tuple[SplitFiles, ...] = dataclasses.field(default=(), repr=False)  # TFDS logs the repr


def parallel_text_config(files: Sequence[SplitFiles]) -> ParallelTextConfig:
    """A config named by a hash of the files' identities (paths, sizes, mtimes)."""
    for f in files:
        for path in f.paths:
            if not os.path.isfile(path):
                raise DataError(f"{path}: no such file (the {f.split!r} split needs it).")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.split}\0".encode())
        for path in f.paths:
            st = os.stat(path)
            digest.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    files = tuple(dataclasses.replace(f, source=os.path.abspath(f.source),
                                      target=f.target and os.path.abspath(f.target)) for f in files)
    folder = os.path.commonpath([p for f in files for p in f.paths])
    return ParallelTextConfig(name="h" + digest.hexdigest()[:20], files=files,
                              description=f"{', '.join(f.split for f in files)} from {folder}")


class ParallelText(tfds.core.GeneratorBasedBuilder):
    """Pairs {"source", "target"} of local files, one TFDS split per :class:`SplitFiles`."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Parallel text from local files.",
            features=tfds.features.FeaturesDict({"source": tfds.features.Text(), "target": tfds.features.Text()}),
            disable_shuffling=True,  # read back in file order
        )

    def _split_generators(self, dl_manager):
        return {f.split: self._generate_examples(f) for f in self.builder_config.files}

    def _generate_examples(self, files: SplitFiles) -> Iterator[tuple[int, dict[str, str]]]:
        pairs, _ = read_pairs(files)
        for i, (s, t) in enumerate(pairs):
            yield i, {"source": s, "target": t}


def prepare_parallel_text(files: Sequence[SplitFiles], data_dir: str = "") -> ParallelText:
    """The prepared builder of ``files`` in ``data_dir`` ("" = TFDS's default): prepared
    (after validating every file) only if this exact set of files was not prepared before."""
    builder = ParallelText(config=parallel_text_config(files), data_dir=data_dir or None)
    if not builder.is_prepared():
        validate(builder.builder_config.files)
        builder.download_and_prepare(file_format="array_record")
    return builder


def read_data_source(source: Sequence[dict], src_key: str, tgt_key: str, chunk: int = 8192) -> Pairs:
    """All (source, target) texts of a TFDS data source (``builder.as_data_source(split)``), in order."""
    out: Pairs = []
    for start in range(0, len(source), chunk):
        for ex in source.__getitems__(range(start, min(start + chunk, len(source)))):
            out.append((_text(ex[src_key]), _text(ex[tgt_key])))
    return out


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
