"""prepare_data: tokenizers trained on the training split (joint or separate), saved and
reused, over-long pairs dropped or truncated and counted, vocabulary sizes resolved."""

from __future__ import annotations

import logging
import os

import pytest

from s2s_jax.config import Config, DataConfig, ModelConfig
from s2s_jax.data import dataset
from s2s_jax.data.dataset import prepare_data
from s2s_jax.errors import ConfigError
from s2s_jax.vocab import EOS_ID, tokenizer_path
from tests.data.test_sources import MULTI30K_SPLITS, PAIRS, write_corpus


def corpus(tmp_path, pairs=PAIRS, **data) -> Config:
    root = write_corpus(tmp_path / "corpus", pairs)
    return Config(data=DataConfig(**{"source": root, "src_lang": "de", "tgt_lang": "en", "splits": MULTI30K_SPLITS,
                                     "data_dir": str(tmp_path / "tfds"), "tokenizer": "char",
                                     "bucket_lengths": (32,), **data}))


@pytest.mark.parametrize("joint", [True, False])
def test_tokenized_splits_decode_to_the_raw_text(tmp_path, joint):
    cfg = corpus(tmp_path, joint_vocab=joint)
    data = prepare_data(cfg, str(tmp_path / "run"))
    for role, name in zip(("train", "validation", "test"), MULTI30K_SPLITS, strict=True):
        split = data.splits[role]
        assert list(zip(split.raw_src, split.raw_tgt, strict=True)) == PAIRS[name]
        assert [data.src_tokenizer.decode(x) for x in split.src] == [data.src_tokenizer.normalize(s)
                                                                     for s in split.raw_src]
        assert [data.tgt_tokenizer.decode(y) for y in split.tgt] == [data.tgt_tokenizer.normalize(t)
                                                                     for t in split.raw_tgt]
    train = data.splits["train"]
    assert [data.src_tokenizer.decode(x) for x in train.src] == train.raw_src  # every character known
    src_chars = sorted({c for s, _ in PAIRS["train"] for c in s})
    tgt_chars = sorted({c for _, t in PAIRS["train"] for c in t})
    if joint:
        assert data.src_tokenizer is data.tgt_tokenizer
        assert sorted(data.src_tokenizer.itos[4:]) == sorted(set(src_chars) | set(tgt_chars))
    else:
        assert sorted(data.src_tokenizer.itos[4:]) == src_chars
        assert sorted(data.tgt_tokenizer.itos[4:]) == tgt_chars
    assert data.config.model.src_vocab_size == data.src_tokenizer.vocab_size
    assert data.config.model.tgt_vocab_size == data.tgt_tokenizer.vocab_size
    assert os.path.exists(tokenizer_path(str(tmp_path / "run"), "tgt"))


def test_a_workdir_with_tokenizers_loads_only_the_splits_asked_for(tmp_path, monkeypatch):
    cfg = corpus(tmp_path)
    first = prepare_data(cfg, str(tmp_path / "run"))
    asked = []
    load = dataset.load_splits
    monkeypatch.setattr(dataset, "load_splits", lambda c, roles: asked.append(roles) or load(c, roles))
    again = prepare_data(cfg, str(tmp_path / "run"), splits=("test",))
    assert asked == [("test",)]
    assert again.src_tokenizer.to_json() == first.src_tokenizer.to_json()
    assert [x.tolist() for x in again.splits["test"].src] == [x.tolist() for x in first.splits["test"].src]
    prepare_data(cfg, str(tmp_path / "other"), splits=("test",))  # no tokenizers yet: trained on train
    assert asked[-1] == ("train", "test")


def test_overlong_pairs_dropped_in_training_truncated_elsewhere(tmp_path, caplog):
    cfg = corpus(tmp_path, bucket_lengths=(8, 12))
    with caplog.at_level(logging.WARNING, logger="s2s_jax"):
        data = prepare_data(cfg)
    train, test = data.splits["train"], data.splits["test"]
    fits = [(s, t) for s, t in PAIRS["train"] if len(s) <= 12 and len(t) <= 11]
    assert list(zip(train.raw_src, train.raw_tgt, strict=True)) == fits
    assert train.dropped == len(PAIRS["train"]) - len(fits) > 0
    assert max(len(x) for x in test.src) <= 12 and max(len(y) for y in test.tgt) <= 11
    assert test.truncated == sum(len(s) > 12 or len(t) > 11 for s, t in PAIRS["test2016"])
    assert f"train split: {train.dropped} over-long pairs dropped, 0 truncated" in caplog.text
    truncated = corpus(tmp_path, bucket_lengths=(8, 12), overlong="truncate")
    assert len(prepare_data(truncated).splits["train"]) == len(PAIRS["train"])


def test_no_training_pairs_left_after_filtering(tmp_path):
    cfg = corpus(tmp_path, bucket_lengths=(2,))
    with pytest.raises(ConfigError, match=r"^no training pairs left after filtering: 5 were longer than "
                                          r"data.bucket_lengths\[-1\]=2\.$"):
        prepare_data(cfg)


def test_model_vocab_size_must_match_the_tokenizer(tmp_path):
    cfg = corpus(tmp_path).replace(model=ModelConfig(src_vocab_size=7))
    with pytest.raises(ConfigError, match=r"^model.src_vocab_size is 7 but the tokenizer has \d+ tokens"):
        prepare_data(cfg)


def test_source_eos_ends_every_source_also_when_truncated(tmp_path):
    plain = prepare_data(corpus(tmp_path, bucket_lengths=(8, 12), overlong="truncate"))
    eos = prepare_data(corpus(tmp_path, bucket_lengths=(8, 12), overlong="truncate", source_eos=True))
    for role in ("train", "test"):
        a, b = plain.splits[role], eos.splits[role]
        assert [list(y) for y in a.tgt] == [list(y) for y in b.tgt]
        for raw, x, y in zip(a.raw_src, a.src, b.src, strict=True):
            if len(raw) < 12:  # fits with its EOS
                assert list(y) == [*x, EOS_ID]
            else:  # cut to 11 pieces and EOS
                assert list(y) == [*eos.src_tokenizer.encode(raw)[:11], EOS_ID]
    assert dataset.source_ids(eos.src_tokenizer, ["", "ab"], eos.config.data) == [
        [], [*eos.src_tokenizer.encode("ab"), EOS_ID]]
