"""Sources: local parallel text prepared by a TFDS builder (array_record), TFDS catalog
datasets, and every bad input refused before anything is written into data_dir."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import sys

import pytest
import tensorflow_datasets as tfds

from s2s_jax.config import DataConfig
from s2s_jax.data import text_files, tfds_text
from s2s_jax.data.sources import load_splits
from s2s_jax.errors import ConfigError, DataError

ROLES = ("train", "validation", "test")
MULTI30K_SPLITS = ("train", "val", "test2016")

PAIRS = {
    "train": [("Ein Hund läuft.", "A dog runs."), ("Zwei Männer, ein Boot", "Two men, a boat"),
              ("Straße\tmit Tab", "street with tab"), ("日本 ✓", "Japan ✓"), ("  Leerzeichen ", " spaces  ")],
    "val": [("Eine Katze.", "A cat."), ("Kinder spielen.", "Children play.")],
    "test2016": [("Ein Mann.", "A man."), ("Frauen", "Women"), ("Ende", "End")],
}


def write_lines(path, lines, *, ending: str = "\n", final_newline: bool = True, bom: bool = False) -> str:
    text = ending.join(lines) + (ending if final_newline else "")
    with open(path, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


def write_corpus(root, pairs=PAIRS) -> str:
    root.mkdir(exist_ok=True)
    for split, rows in pairs.items():
        write_lines(root / f"{split}.de", [s for s, _ in rows])
        write_lines(root / f"{split}.en", [t for _, t in rows])
    return str(root)


def corpus_config(source: str, data_dir, **kw) -> DataConfig:
    return DataConfig(**{"source": source, "src_lang": "de", "tgt_lang": "en", "splits": MULTI30K_SPLITS,
                         "data_dir": str(data_dir), **kw})


def written(data_dir) -> list[str]:
    return sorted(os.path.relpath(p, data_dir) for p in glob.glob(f"{data_dir}/**", recursive=True))[1:]


def test_line_aligned_files_read_back_every_pair_in_order(tmp_path):
    cfg = corpus_config(write_corpus(tmp_path / "corpus"), tmp_path / "tfds")
    got = load_splits(cfg, ROLES)
    assert got == {"train": PAIRS["train"], "validation": PAIRS["val"], "test": PAIRS["test2016"]}
    # Prepared by TFDS as array_record files, without TensorFlow.
    assert glob.glob(f"{tmp_path}/tfds/parallel_text/*/1.0.0/*.array_record-*")
    assert "tensorflow" not in sys.modules
    assert load_splits(cfg, ("test",)) == {"test": PAIRS["test2016"]}


def test_order_is_kept_for_many_pairs(tmp_path):
    pairs = {"train": [(f"quelle {i}", f"ziel {i}") for i in range(3000)], "val": [("a", "b")],
             "test2016": [("c", "d")]}
    cfg = corpus_config(write_corpus(tmp_path / "corpus", pairs), tmp_path / "tfds")
    assert load_splits(cfg, ("train",))["train"] == pairs["train"]


def test_line_endings_bom_and_missing_final_newline(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    write_lines(root / "val.de", [s for s, _ in PAIRS["val"]], ending="\r\n", bom=True)
    write_lines(root / "val.en", [t for _, t in PAIRS["val"]], final_newline=False)
    got = load_splits(corpus_config(str(root), tmp_path / "tfds"), ("validation",))
    assert got["validation"] == PAIRS["val"]


def test_prepared_dataset_is_reused_and_a_changed_file_prepared_afresh(tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    cfg = corpus_config(write_corpus(root), tmp_path / "tfds")
    load_splits(cfg, ROLES)

    def refuse(*args, **kwargs):
        raise AssertionError("prepared again")

    with monkeypatch.context() as m:
        m.setattr(tfds_text.ParallelText, "download_and_prepare", refuse)
        assert load_splits(cfg, ("train",))["train"] == PAIRS["train"]
    changed = [("Neu", "New"), *PAIRS["train"][1:]]
    write_lines(root / "train.de", [s for s, _ in changed])
    write_lines(root / "train.en", [t for _, t in changed])
    assert load_splits(cfg, ("train",))["train"] == changed
    assert len(glob.glob(f"{tmp_path}/tfds/parallel_text/h*")) == 2


def test_tsv_directory_and_extra_columns(tmp_path):
    root = tmp_path / "tsv"
    root.mkdir()
    for split, rows in PAIRS.items():
        if split == "train":
            rows = [(s.replace("\t", " "), t) for s, t in rows]
        write_lines(root / f"{split}.tsv", [f"{s}\t{t}\tCC-BY 2.0 (France) Attribution" for s, t in rows])
    cfg = DataConfig(source=str(root), splits=MULTI30K_SPLITS, data_dir=str(tmp_path / "tfds"))
    got = load_splits(cfg, ROLES)
    assert got["train"] == [(s.replace("\t", " "), t) for s, t in PAIRS["train"]]
    assert got["test"] == PAIRS["test2016"]


def test_single_tsv_file_is_split_train_and_sliced(tmp_path):
    rows = [(f"src {i}", f"tgt {i}") for i in range(10)]
    path = write_lines(tmp_path / "pairs.tsv", [f"{s}\t{t}" for s, t in rows])
    cfg = DataConfig(source=path, splits=("train[:6]", "train[6:8]", "train[8:]"), data_dir=str(tmp_path / "tfds"))
    assert load_splits(cfg, ROLES) == {"train": rows[:6], "validation": rows[6:8], "test": rows[8:]}
    with pytest.raises(ConfigError, match=r"names 'validation'.*pairs\.tsv"):
        load_splits(DataConfig(source=path, data_dir=str(tmp_path / "tfds")), ROLES)


def test_empty_lines_are_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "corpus"
    write_corpus(root)
    write_lines(root / "train.de", ["eins", "", "drei", "vier", "  "])
    write_lines(root / "train.en", ["one", "two", "", "four", "five"])
    with caplog.at_level(logging.WARNING, logger="s2s_jax"):
        got = load_splits(corpus_config(str(root), tmp_path / "tfds"), ("train",))
    assert got["train"] == [("eins", "one"), ("vier", "four")]
    [message] = [r.getMessage() for r in caplog.records if r.name == text_files.__name__]
    assert f"{root}/train.de / {root}/train.en: 3 pairs with an empty side skipped, 2 kept" in message


# Bad input: each a DataError naming the file (and the line), nothing written into data_dir.

def assert_refused(cfg: DataConfig, pattern: str, error: type[Exception] = DataError) -> None:
    with pytest.raises(error, match=pattern) as info:
        load_splits(cfg, ROLES)
    message = str(info.value)
    assert message.count(". ") == 0 and message.endswith("."), message  # one sentence
    assert not os.path.exists(cfg.data_dir), written(cfg.data_dir)


def test_missing_file(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    os.remove(root / "val.en")
    assert_refused(corpus_config(str(root), tmp_path / "tfds"), rf"^{root}/val\.en: no such file \(the 'val' split")


def test_line_counts_differ(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    write_lines(root / "test2016.en", ["A man.", "Women"])
    assert_refused(corpus_config(str(root), tmp_path / "tfds"),
                   rf"^{root}/test2016\.de has 3 lines but {root}/test2016\.en has 2;")


def test_invalid_utf8_names_file_and_line(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    with open(root / "train.en", "wb") as f:
        f.write(b"A dog runs.\nTwo men\nStra\xdfe\nJapan\nspaces\n")  # latin-1, not UTF-8
    assert_refused(corpus_config(str(root), tmp_path / "tfds"), rf"^{root}/train\.en:3: invalid UTF-8")


def test_tsv_line_without_tab(tmp_path):
    path = write_lines(tmp_path / "pairs.tsv", ["a\tb", "", "c\td", "no tab here", "e\tf"])
    cfg = DataConfig(source=path, splits=("train[:1]", "train[1:2]", "train[2:]"), data_dir=str(tmp_path / "tfds"))
    assert_refused(cfg, rf"^{path}:4: no tab between source and target\.$")


def test_empty_training_set(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    write_lines(root / "train.de", ["", "x", ""])
    write_lines(root / "train.en", ["a", "", " "])
    assert_refused(corpus_config(str(root), tmp_path / "tfds"),
                   rf"^{root}/train\.de / {root}/train\.en holds no pairs \(3 empty lines skipped\)\.$")


def test_unknown_source_and_half_set_languages(tmp_path):
    assert_refused(DataConfig(source=str(tmp_path / "nowhere"), data_dir=str(tmp_path / "tfds")),
                   r"is no synthetic task .*no directory")
    root = write_corpus(tmp_path / "corpus")
    assert_refused(corpus_config(root, tmp_path / "tfds", tgt_lang=""), r"src_lang and data.tgt_lang", ConfigError)


# A TFDS catalog dataset: a builder of our own, registered with TFDS like the catalog's
# (wmt14_translate, ted_hrlr_translate), examples keyed by language, offline.

class S2sJaxTestTranslation(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put {split}.tsv files of German<TAB>English lines in the manual directory."

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.Translation(languages=("de", "en")))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(dl_manager.manual_dir / f"{split}.tsv")
                for split in ("train", "validation", "test")}

    def _generate_examples(self, path):
        for i, line in enumerate(path.read_text().splitlines()):
            de, en = line.split("\t")
            yield i, {"de": de, "en": en}


def test_tfds_catalog_dataset(tmp_path):
    manual = tmp_path / "tfds" / "downloads" / "manual"
    manual.mkdir(parents=True)
    expected = {"train": PAIRS["train"][:2], "validation": PAIRS["val"], "test": PAIRS["test2016"]}
    for split, rows in expected.items():
        write_lines(manual / f"{split}.tsv", [f"{s}\t{t}" for s, t in rows])
    cfg = DataConfig(source="tfds:s2s_jax_test_translation", src_lang="de", tgt_lang="en",
                     data_dir=str(tmp_path / "tfds"))
    got = load_splits(cfg, ROLES)
    # Catalog datasets shuffle on preparation: the same pairs, in TFDS's order.
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}
    assert glob.glob(f"{tmp_path}/tfds/s2s_jax_test_translation/1.0.0/*.array_record-*")
    reverse = load_splits(dataclasses.replace(cfg, **{"src_lang": "en", "tgt_lang": "de"}), ("test",))
    assert sorted(reverse["test"]) == sorted((t, s) for s, t in expected["test"])
    with pytest.raises(ConfigError, match=r"data.tgt_lang is 'fr' but the examples of s2s_jax_test_translation have "
                                          r"the keys de, en\."):
        load_splits(dataclasses.replace(cfg, **{"tgt_lang": "fr"}), ROLES)
    with pytest.raises(ConfigError, match=r"names 'val' for validation, but .* has the splits test, train, validation"):
        load_splits(dataclasses.replace(cfg, **{"splits": ("train", "val", "test")}), ROLES)
    with pytest.raises(DataError, match=r"TFDS has no dataset named 'no_such_dataset_xyz'"):
        load_splits(dataclasses.replace(cfg, **{"source": "tfds:no_such_dataset_xyz"}), ROLES)
