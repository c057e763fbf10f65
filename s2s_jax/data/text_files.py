"""Local parallel text files read into (source, target) pairs, by the same rules everywhere.

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
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from s2s_jax.errors import DataError
from s2s_jax.fileio import decode_utf8

log = logging.getLogger(__name__)

Pairs = list[tuple[str, str]]


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
    return decode_lines(raw, path)


def decode_lines(raw: bytes, name: str, first_line: int = 1) -> list[str]:
    """``raw`` split at ``\\n`` into lines of text, without a trailing ``\\r`` or a leading UTF-8
    byte order mark; invalid UTF-8 is a :class:`DataError` naming ``name`` and the line
    (numbered from ``first_line``)."""
    if first_line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = decode_utf8(raw, name, first_line).split("\n")  # (no UTF-8 sequence holds a \\n byte)
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


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
