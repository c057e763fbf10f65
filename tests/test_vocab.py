"""Tokenizers: round trips ``decode(encode(t)) == normalize(t)``, vocabularies against a
Counter reference, save/load in a workdir, and refusal of files that do not match the config."""

from __future__ import annotations

import collections
import json

import pytest
from sentencepiece import sentencepiece_model_pb2

from s2s_jax.config import DataConfig
from s2s_jax.data import synthetic
from s2s_jax.errors import TokenizerError
from s2s_jax.vocab import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    CharTokenizer,
    WordTokenizer,
    load_tokenizers,
    save_tokenizers,
    tokenizer_path,
    train_tokenizer,
)

TRAIN = [s for pair in synthetic.generate("dates", (1000, 1, 1), 0)[0] for s in pair]
UNSEEN = ["Saturday, 5 MARCH 2019!", "  two   spaces\tand a tab ", "日本語 ✓ émigré", "ﬁ ½ Ａ", ""]


def reference_vocab(units, min_freq, max_size=0):
    counts = collections.Counter(u for text in units for u in text)
    ranked = sorted((u for u, c in counts.items() if c >= min_freq), key=lambda u: (-counts[u], u))
    return list(SPECIALS) + (ranked[:max_size] if max_size else ranked)


def assert_round_trips(tok, texts):
    for text in texts:
        ids = tok.encode(text)
        assert all(i >= UNK_ID for i in ids)
        assert tok.decode(ids) == tok.normalize(text), text
        # Decoding stops at EOS and drops PAD and BOS.
        assert tok.decode([BOS_ID, *ids, EOS_ID, *ids, PAD_ID]) == tok.normalize(text)


@pytest.mark.parametrize("min_freq", [1, 50])
def test_char_tokenizer(min_freq):
    tok = train_tokenizer(DataConfig(tokenizer="char", min_freq=min_freq), TRAIN)
    assert tok.itos == reference_vocab(TRAIN, min_freq)
    assert_round_trips(tok, TRAIN[:200] + UNSEEN)
    if min_freq == 1:
        assert all(tok.normalize(t) == t for t in TRAIN)
    assert tok.normalize("a✓") == "a<unk>" and tok.encode("✓") == [UNK_ID]


@pytest.mark.parametrize(("lowercase", "min_freq", "max_size"), [(False, 1, 0), (True, 1, 0), (True, 3, 0),
                                                                 (False, 1, 20)])
def test_word_tokenizer(lowercase, min_freq, max_size):
    cfg = DataConfig(tokenizer="word", lowercase=lowercase, min_freq=min_freq, max_vocab_size=max_size)
    tok = train_tokenizer(cfg, TRAIN)
    words = [(t.lower() if lowercase else t).split() for t in TRAIN]
    assert tok.itos == reference_vocab(words, min_freq, max_size)
    assert_round_trips(tok, TRAIN[:200] + UNSEEN)


def test_word_tokenizer_example():
    tok = WordTokenizer.train(["a b b", "B c"], lowercase=True, min_freq=2)
    assert tok.itos == [*SPECIALS, "b"]
    assert tok.normalize(" A  B x ") == "<unk> b <unk>" == tok.decode(tok.encode(" A  B x "))


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def sentencepiece(request):
    cfg = DataConfig(tokenizer="sentencepiece", vocab_size=400, sentencepiece_model=request.param)
    return cfg, train_tokenizer(cfg, TRAIN)


def test_sentencepiece_round_trips_and_special_ids(sentencepiece):
    cfg, tok = sentencepiece
    proto = sentencepiece_model_pb2.ModelProto.FromString(tok.model_proto)
    assert proto.trainer_spec.model_type == {"unigram": 1, "bpe": 2}[cfg.sentencepiece_model]
    assert tok.vocab_size == 400
    assert [tok.sp.pad_id(), tok.sp.bos_id(), tok.sp.eos_id(), tok.sp.unk_id()] == [PAD_ID, BOS_ID, EOS_ID, UNK_ID]
    assert_round_trips(tok, TRAIN[:200] + UNSEEN)
    # Byte fallback: characters never seen in training come back unchanged.
    assert tok.decode(tok.encode("日本語 ✓")) == "日本語 ✓"
    assert UNK_ID not in tok.encode("日本語 ✓")


def test_sentencepiece_vocab_too_large_is_a_tokenizer_error():
    with pytest.raises(TokenizerError, match=r"lower data.vocab_size"):
        train_tokenizer(DataConfig(tokenizer="sentencepiece", vocab_size=5000), TRAIN[:20])


def test_save_and_load_give_identical_tokenizers(tmp_path, sentencepiece):
    sp_cfg, sp = sentencepiece
    word_cfg = DataConfig(tokenizer="word", lowercase=True, max_vocab_size=30, joint_vocab=False)
    for name, cfg, src, tgt in [("sp", sp_cfg, sp, sp),
                                ("word", word_cfg, train_tokenizer(word_cfg, TRAIN[::2]),
                                 train_tokenizer(word_cfg, TRAIN[1::2]))]:
        workdir = str(tmp_path / name)
        save_tokenizers(workdir, src, tgt, cfg)
        loaded = load_tokenizers(workdir, cfg)
        for original, back in zip((src, tgt), loaded, strict=True):
            assert type(back) is type(original) and back.to_json() == original.to_json()
            assert back.encode_batch(UNSEEN + TRAIN[:50]) == original.encode_batch(UNSEEN + TRAIN[:50])
            assert [back.decode(ids) for ids in back.encode_batch(UNSEEN)] == [original.normalize(t) for t in UNSEEN]


@pytest.mark.parametrize(("saved", "current", "pattern"), [
    ({"tokenizer": "char"}, {"tokenizer": "word"}, r"holds a char tokenizer but data.tokenizer is 'word'\.$"),
    ({"tokenizer": "char", "min_freq": 2}, {"tokenizer": "char"},
     r"was trained with data.min_freq=2 but data.min_freq is 1\.$"),
    ({"tokenizer": "word", "lowercase": True}, {"tokenizer": "word"},
     r"lowercase=True but data.lowercase is False\.$"),
    ({"tokenizer": "word", "max_vocab_size": 10}, {"tokenizer": "word"},
     r"was trained with data.max_vocab_size=10 but data.max_vocab_size is 0\.$"),
    ({"tokenizer": "char", "joint_vocab": False}, {"tokenizer": "char"},
     r"was trained with data.joint_vocab=False but data.joint_vocab is True\.$"),
    ({"tokenizer": "sentencepiece", "vocab_size": 400}, {"tokenizer": "sentencepiece", "vocab_size": 500},
     r"has 400 pieces but data.vocab_size is 500\.$"),
    ({"tokenizer": "sentencepiece", "vocab_size": 400, "sentencepiece_model": "bpe"},
     {"tokenizer": "sentencepiece", "vocab_size": 400},
     r"was trained with data.sentencepiece_model='bpe' but data.sentencepiece_model is 'unigram'\.$"),
])
def test_a_tokenizer_file_not_matching_the_config_is_refused(tmp_path, saved, current, pattern):
    saved_cfg = DataConfig(**saved)
    tok = train_tokenizer(saved_cfg, TRAIN)
    save_tokenizers(str(tmp_path), tok, tok, saved_cfg)
    path = tokenizer_path(str(tmp_path), "src")
    with pytest.raises(TokenizerError, match=f"^{path}: {pattern}"):
        load_tokenizers(str(tmp_path), DataConfig(**current))


def test_missing_or_damaged_tokenizer_file(tmp_path):
    cfg = DataConfig(tokenizer="char")
    path = tokenizer_path(str(tmp_path), "src")
    with pytest.raises(TokenizerError, match=f"^{path}: no tokenizer file"):
        load_tokenizers(str(tmp_path), cfg)
    tok = CharTokenizer.train(TRAIN)
    save_tokenizers(str(tmp_path), tok, tok, cfg)
    tgt_path = tokenizer_path(str(tmp_path), "tgt")
    with open(tgt_path, "w") as f:
        f.write('{"kind": "char", "symb')
    with pytest.raises(TokenizerError, match=f"^{tgt_path}: not a valid tokenizer file"):
        load_tokenizers(str(tmp_path), cfg)
    with open(tgt_path, "w") as f:
        json.dump({"kind": "morse"}, f)
    with pytest.raises(TokenizerError, match=f"^{tgt_path}: not a valid tokenizer file"):
        load_tokenizers(str(tmp_path), cfg)
