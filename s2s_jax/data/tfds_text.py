"""Local parallel text as a TFDS dataset: prepared once into ``data_dir``
(array_record files, no TensorFlow needed) and read back in file order with
``builder.as_data_source(split)``.

Inputs, one split per file (or pair of files):

- line-aligned files: line i of the source file translates line i of the
  target file;
- TSV files of ``source<TAB>target`` lines; columns after the second are
  ignored (such as the attribution columns of tatoeba/manythings.org files).

Reading rules: lines end at ``\\n`` only (a trailing ``\\r`` and a UTF-8 byte
order mark at the start of a file are removed); text is otherwise kept as is,
so BLEU references are the raw lines. A pair where either side is empty or
only whitespace is skipped, and the number skipped is logged as a warning
when the dataset is prepared (empty lines are common at the end of files and
carry nothing to learn).

Errors (:class:`DataError`, one sentence naming the file, and the line where
there is one), all raised before anything is written into ``data_dir``: a
missing file; source and target files with different line counts; invalid
UTF-8; a TSV line without a tab; a file with no pairs left after skipping.

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

from s2s_jax.data.sources import Pairs
from s2s_jax.errors import DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SplitFiles:
    """The files of one split: ``target`` is "" when ``source`` is a TSV file of pairs."""

    split: str
    source: str
    target: str = ""

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.source, self.target) if self.target else (self.source,)


def _lines(path: str) -> list[str]:
    """The lines of ``path`` as text; invalid UTF-8 is a :class:`DataError` naming the line."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    chunks = raw.split(b"\n")
    if chunks[-1] == b"":  # the newline that ends the last line
        chunks.pop()
    out = []
    for number, chunk in enumerate(chunks, 1):
        try:
            out.append(chunk.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{number}: invalid UTF-8 (byte {e.start + 1} of the line).") from None
    return out


def read_pairs(files: SplitFiles) -> tuple[Pairs, int]:
    """The (source, target) pairs of one split, and how many were skipped as empty."""
    if files.target:
        src, tgt = _lines(files.source), _lines(files.target)
        if len(src) != len(tgt):
            raise DataError(f"{files.source} has {len(src)} lines but {files.target} has {len(tgt)}; "
                            "line-aligned files must have equal line counts.")
        candidates = list(zip(src, tgt, strict=True))
    else:
        candidates = []
        for number, line in enumerate(_lines(files.source), 1):
            if not line.strip():
                candidates.append(("", ""))
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise DataError(f"{files.source}:{number}: no tab between source and target.")
            candidates.append((fields[0], fields[1]))
    pairs = [(s, t) for s, t in candidates if s.strip() and t.strip()]
    return pairs, len(candidates) - len(pairs)


def validate(files: Sequence[SplitFiles]) -> None:
    """Read every split as preparation would, raising the first problem; warn of skipped pairs."""
    for f in files:
        pairs, skipped = read_pairs(f)
        where = " / ".join(f.paths)
        if not pairs:
            raise DataError(f"{where} holds no pairs ({skipped} empty lines skipped).")
        if skipped:
            log.warning("%s: %d pairs with an empty side skipped, %d kept.", where, skipped, len(pairs))


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
