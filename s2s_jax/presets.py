"""Named configurations: ``get_preset(name)``, ``list_presets()``.

A preset is a function returning a :class:`Config`; register one with
``@preset``. Override fields with ``cfg.replace(model={...})`` in Python or
``--model.hidden-size 256`` on the command line.
"""

from __future__ import annotations

from collections.abc import Callable

from s2s_jax.config import Config, DataConfig, DecodeConfig, ModelConfig, ScheduledSamplingConfig, TrainConfig
from s2s_jax.errors import ConfigError

_PRESETS: dict[str, Callable[[], Config]] = {}


def preset(fn: Callable[[], Config]) -> Callable[[], Config]:
    _PRESETS[fn.__name__] = fn
    return fn


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str) -> Config:
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(list_presets())}.")
    return _PRESETS[name]()


def _synthetic(task: str, **model) -> Config:
    return Config(
        name=task,
        model=ModelConfig(**{"embed_dim": 32, "hidden_size": 128, "cell": "gru", **model}),
        data=DataConfig(source=task, tokenizer="char", bucket_lengths=(8, 16), batch_size=64, source_eos=True),
        train=TrainConfig(num_steps=1500, learning_rate=3e-3, eval_every=500, checkpoint_every=500,
                          eval_max_examples=500),
        decode=DecodeConfig(max_len_b=16),
    )


@preset
def dates() -> Config:
    """Date normalisation ("saturday 5 march 2019" -> "2019-03-05") with a bidirectional
    GRU encoder and Luong attention with input feeding: the quickstart (``make demo``).
    ``dtype="auto"``: bfloat16 converts all 1000 test dates as float32 does, in 1.4 instead of 1.55
    minutes on a 2-core CPU with AMX (EXPERIMENTS.md)."""
    return Config(
        name="dates",
        model=ModelConfig(embed_dim=32, hidden_size=128, cell="gru", bidirectional=True, bridge="linear",
                          attention="general", attention_style="luong", input_feeding=True, dtype="auto"),
        data=DataConfig(source="dates", tokenizer="char", bucket_lengths=(12, 32), batch_size=128,
                        source_eos=True),
        # rsqrt decay: at a constant 3e-3 the run overshoots after step 300 on some CPUs (an AMD
        # EPYC: validation exact match 0.994 at 300, 0.924 at 600, test 0.951); decayed, 1.0. 1000
        # steps: in bfloat16 on an AMD Zen 5 with AVX512-BF16, 600 leave 3 of 1000 test dates wrong,
        # and on an Intel Xeon with AMX, 800 leave one (EXPERIMENTS.md).
        train=TrainConfig(num_steps=1000, learning_rate=3e-3, lr_schedule="rsqrt", warmup_steps=100, eval_every=300,
                          checkpoint_every=300, eval_max_examples=500, log_every=50),
        decode=DecodeConfig(max_len_b=12),
    )


@preset
def copy() -> Config:
    """Copy a string of up to 12 symbols: the smallest sanity check."""
    return _synthetic("copy")


@preset
def reverse() -> Config:
    return _synthetic("reverse", attention="dot")


@preset
def sort() -> Config:
    return _synthetic("sort", attention="dot")


@preset
def addition() -> Config:
    """"123+45" -> "168", a reversed-source LSTM (reading digits least significant first)."""
    cfg = _synthetic("addition", cell="lstm", reverse_source=True)
    return cfg.replace(decode={"max_len_b": 8})


@preset
def multi30k() -> Config:
    """Multi30k German->English (Elliott et al. 2016) from ``../shared/data/multi30k`` (relative to
    the working directory: run from the repository root): a bidirectional GRU encoder, a GRU
    decoder with additive attention in the Luong arrangement with input feeding (the recurrent
    decoder of JoeyNMT), a joint SentencePiece vocabulary of 8000 pieces.

    Buckets: joint unigram pieces of the training split are 15 long on average and at
    most 55 (source) / 53 (target + EOS). With the leftover pairs of small bucket pairs moved into
    the empty rows of larger ones, (12, 16, 20, 24, 32, 64) pads an epoch to 87% real tokens in 23
    shapes (compiled programs), (16, 24, 32, 64) to 79% in 11; in 15 minutes on a 2-core CPU the
    finer buckets, their extra compilations included, trained 1,300 steps against 1,200
    (BENCHMARKS.md). One epoch is 228 batches of 128 sentences; evaluation runs once an epoch.

    Seven epochs, the learning rate halved every half epoch after the fifth (Sutskever et al.
    2014, sec. 3.4): test2016 BLEU 40.5 with beam 5 after 56 minutes on a 2-core CPU in float32,
    41.0 after 32 minutes in bfloat16 (EXPERIMENTS.md, Adam 1e-3, with buckets (16, 24, 32, 64)),
    hence ``dtype="auto"``; ``--train.lr-schedule constant`` gives the constant-rate run of
    EXPERIMENTS.md. Adam at 2e-3 ends as well (40.45) and learns faster early: test2016 31.19
    against 28.82 after two epochs, about what a 15-minute budget on such a CPU reaches; 3e-3
    stalled in its first epoch (EXPERIMENTS.md, "The learning rate for a short budget"). For a
    15-minute budget, :func:`multi30k_short`.
    """
    return Config(
        name="multi30k",
        model=ModelConfig(embed_dim=256, hidden_size=512, cell="gru", bidirectional=True, bridge="linear",
                          attention="additive", attention_style="luong", input_feeding=True, dropout=0.3,
                          dtype="auto"),
        data=DataConfig(source="../shared/data/multi30k", src_lang="de", tgt_lang="en",
                        splits=("train", "val", "test2016"), tokenizer="sentencepiece", joint_vocab=True,
                        vocab_size=8000, bucket_lengths=(12, 16, 20, 24, 32, 64), batch_size=128, eval_batch_size=256,
                        source_eos=True),
        train=TrainConfig(num_epochs=7, optimizer="adam", learning_rate=2e-3, lr_schedule="halving",
                          halving_start_epoch=5.0, clip_norm=1.0, eval_every=228, checkpoint_every=228, log_every=50,
                          best_metric="bleu"),
        decode=DecodeConfig(strategy="greedy", max_len_a=1.5, max_len_b=10),
    )


@preset
def multi30k_short() -> Config:
    """:func:`multi30k`'s model and data for a budget of about 15 minutes on a 2-core CPU:
    batches of 64 sentences, twice the updates an epoch at about the same tokens a second, and
    2.5 epochs, the learning rate halved after the first 1.5 and again after 2 (a short
    Sutskever et al. 2014 schedule). On a 2-core AMD Zen 3 in float32, its programs already in
    the compilation cache, it ends in 14.6-14.8 minutes at test2016 BLEU 37.6 and 38.0 with beam
    5 (two seeds), past JoeyNMT's 37.4 after 60; 128 sentences a batch reached 34.9 in 15
    minutes. A first run compiles for about 2.5 of them (EXPERIMENTS.md, "A 15-minute budget")."""
    base = multi30k()
    epoch = 2 * base.train.eval_every  # half the batch: twice the steps an epoch
    return base.replace(name="multi30k_short", data={"batch_size": base.data.batch_size // 2},
                        train={"num_epochs": 2.5, "halving_start_epoch": 1.5, "eval_every": epoch,
                               "checkpoint_every": epoch})


@preset
def multi30k_tpu() -> Config:
    """:func:`multi30k` with bfloat16 activations (parameters, optimizer state and loss stay
    float32), for TPUs, whose matrix units take bfloat16 natively. Its 128 sentences per batch
    divide evenly over 4, 8, 16 or 32 TPU devices (see TPU_SETUP.md)."""
    return multi30k().replace(name="multi30k_tpu", model={"dtype": "bfloat16"})


# The papers' models. Each preset runs on the embedded dates task in minutes on a CPU; its
# ``_multi30k`` twin is the same architecture at Multi30k scale (embeddings 256, hidden 512,
# the data section of :func:`multi30k`). The papers' own sizes (1000 units, 4 layers, weeks
# on GPUs) are scaled down to fit a 2-core machine.

def _multi30k_scale(cfg: Config, model: dict | None = None, **train) -> Config:
    base = multi30k()
    return cfg.replace(name=f"{cfg.name}_multi30k", data=base.data,
                       model={"embed_dim": 256, "hidden_size": 512, "dropout": 0.3, **(model or {})},
                       train={**{f: getattr(base.train, f) for f in ("num_epochs", "eval_every", "checkpoint_every",
                                                                    "log_every", "best_metric", "eval_max_examples")},
                              **train},
                       decode={"max_len_a": base.decode.max_len_a, "max_len_b": base.decode.max_len_b})


def _dates_scale(name: str, model: ModelConfig, train: TrainConfig, decode: DecodeConfig) -> Config:
    return Config(name=name, model=model,
                  data=DataConfig(source="dates", tokenizer="char", bucket_lengths=(12, 32), batch_size=128,
                                  source_eos=True),
                  train=train, decode=decode)


# The stacked LSTMs sat on a loss plateau for their first epoch on Multi30k with the forget
# gate's bias at 0 (EXPERIMENTS.md); +1 keeps the cell state from halving at every step at the
# start (Gers et al. 2000; Jozefowicz et al. 2015, sec. 2.2).
_LSTM_MULTI30K = {"forget_bias": 1.0}

_DATES_TRAIN = dict(num_steps=600, eval_every=300, checkpoint_every=300, eval_max_examples=500, log_every=100)


@preset
def sutskever2014() -> Config:
    """Sutskever, Vinyals & Le (2014): a deep LSTM reads the source reversed (sec. 3.3) and its
    final state is the decoder's initial state; parameters ~ U(-0.08, 0.08), the learning rate
    halved every half epoch after epoch 5 of 7.5 (sec. 3.4; here after 5.5 of 7.7 on dates),
    gradient norm clipped at 5, beam search. Four layers of 1000 in the paper; two here.

    The paper's plain SGD at 0.7 ran for 7.5 epochs of 12M sentences; in the 1200 steps of this
    preset it stays on the loss plateau where the decoder ignores the source (EXPERIMENTS.md),
    so the halving schedule drives Adam instead (``--train.optimizer sgd
    --train.learning-rate 0.7`` restores the paper's optimizer)."""
    return _dates_scale(
        "sutskever2014",
        ModelConfig(embed_dim=64, hidden_size=256, cell="lstm", num_layers=2, reverse_source=True, bridge="copy",
                    init_scale=0.08),
        TrainConfig(optimizer="adam", learning_rate=3e-3, lr_schedule="halving",
                    clip_norm=5.0, **{**_DATES_TRAIN, "num_steps": 1200, "halving_start_epoch": 5.5}),
        DecodeConfig(strategy="beam", beam_size=5, max_len_b=12))


@preset
def sutskever2014_multi30k() -> Config:
    """Ten epochs, the learning rate halved every half epoch over the last 2.5 (as in the
    paper's 7.5): without attention the deep LSTM is still improving by 1-2 BLEU an epoch at
    epoch 7. Test2016 BLEU 16.3 with beam 5 after at most 92 minutes on a 2-core CPU
    (EXPERIMENTS.md)."""
    return _multi30k_scale(sutskever2014(), model=_LSTM_MULTI30K, learning_rate=1e-3, halving_start_epoch=7.5,
                           num_epochs=10.0)


@preset
def cho2014() -> Config:
    """Cho et al. (2014): a GRU encoder-decoder whose context vector initialises the decoder
    (tanh bridge) and joins the decoder input and the generator input at every step (eqs. 5-6
    of the appendix). Adadelta in the paper; Adam here."""
    return _dates_scale(
        "cho2014",
        ModelConfig(embed_dim=32, hidden_size=128, cell="gru", bridge="linear", context_every_step=True),
        TrainConfig(learning_rate=3e-3, **_DATES_TRAIN),
        DecodeConfig(max_len_b=12))


@preset
def cho2014_multi30k() -> Config:
    return _multi30k_scale(cho2014())


@preset
def bahdanau2015() -> Config:
    """Bahdanau, Cho & Bengio (2015): a bidirectional GRU encoder, the decoder initialised from
    the backward state through tanh, and additive attention queried with the previous decoder
    state, the context entering the GRU input and the output layer (eqs. 4-6 and appendix A).
    ``--model.maxout-units 500`` adds the paper's maxout layer before the softmax (appendix
    A.2.2), as the Multi30k twin does."""
    return _dates_scale(
        "bahdanau2015",
        ModelConfig(embed_dim=32, hidden_size=128, cell="gru", bidirectional=True, bridge="linear",
                    attention="additive", attention_style="bahdanau"),
        TrainConfig(learning_rate=3e-3, **_DATES_TRAIN),
        DecodeConfig(max_len_b=12))


@preset
def bahdanau2015_multi30k() -> Config:
    """With the paper's maxout layer of 500 units (an epoch in 56% of the plain output layer's
    time) and the :func:`multi30k` preset's training: Adam 1e-3 for seven epochs, halved every
    half epoch after the fifth. Test2016 BLEU 40.1 with beam 5 after 74 minutes on a 2-core
    CPU (EXPERIMENTS.md)."""
    return _multi30k_scale(bahdanau2015(), model={"maxout_units": 500}, learning_rate=1e-3, lr_schedule="halving",
                           halving_start_epoch=5.0)


@preset
def luong2015() -> Config:
    """Luong, Pham & Manning (2015): stacked LSTMs, global attention over the top encoder
    states with the current decoder state as query, the attentional state tanh(W_c[c; h])
    (eq. 5) and input feeding (sec. 3.3). ``--model.attention dot|general|additive`` picks the
    score (eq. 8; additive is their "concat")."""
    return _dates_scale(
        "luong2015",
        ModelConfig(embed_dim=32, hidden_size=128, cell="lstm", num_layers=2, bridge="copy",
                    attention="general", attention_style="luong", input_feeding=True),
        TrainConfig(learning_rate=3e-3, **_DATES_TRAIN),
        DecodeConfig(max_len_b=12))


@preset
def luong2015_multi30k() -> Config:
    """Ten epochs, as Luong et al. train (sec. 4.1), the learning rate halved every half epoch
    after the eighth (they halve it every epoch after the fifth): the stacked LSTMs learn slowly
    for two epochs, then catch up. Test2016 BLEU 38.0 with beam 5 after at most 106 minutes on
    a 2-core CPU (EXPERIMENTS.md)."""
    return _multi30k_scale(luong2015(), model=_LSTM_MULTI30K, lr_schedule="halving", halving_start_epoch=8.0,
                           num_epochs=10.0)


@preset
def scheduled_sampling() -> Config:
    """Bengio et al. (2015) on an attention model (:func:`bahdanau2015`): the decoder's input is
    the gold previous token with probability eps_i and the model's own sample otherwise, eps_i
    decaying with the inverse sigmoid schedule k / (k + exp(i / k)) (sec. 2.4); k = 125 brings
    it to 0.5 at the last of the 600 steps.
    ``--train.scheduled-sampling.schedule linear|exponential|inverse_sigmoid`` picks the decay."""
    cfg = bahdanau2015()
    return cfg.replace(name="scheduled_sampling", train={"scheduled_sampling": ScheduledSamplingConfig(
        "inverse_sigmoid", k=125.0, mode="sample")})


@preset
def scheduled_sampling_multi30k() -> Config:
    """k = 290 brings the gold token's probability to 0.49 at the last of the 1652 steps of seven
    epochs, as k = 125 does at the last of 600 on the dates task."""
    cfg = bahdanau2015_multi30k()
    return cfg.replace(name="scheduled_sampling_multi30k", train={"scheduled_sampling": ScheduledSamplingConfig(
        "inverse_sigmoid", k=290.0, mode="sample")})
