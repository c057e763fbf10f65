"""Checkpoints: exact round trips, best retention under rotation, async saves of donated
state, refusal of incompatible or damaged checkpoints, and a SIGKILL during a save."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import s2s_jax as s2s
from s2s_jax import checkpoint
from s2s_jax.checkpoint import CHECKPOINTS, Checkpointer, restore
from s2s_jax.data.dataset import prepare_data
from s2s_jax.errors import CheckpointError
from s2s_jax.fileio import atomic_write_text
from s2s_jax.training.schedules import plateau_schedule
from s2s_jax.vocab import tokenizer_path
from tests.conftest import random_batch, tiny_model

pytestmark = pytest.mark.xdist_group("checkpoint")  # module fixtures built once

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**model) -> s2s.Config:
    return s2s.get_preset("copy").replace(model=tiny_model(cell="gru", **model))


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


def shifted(state: s2s.TrainState, step: int) -> s2s.TrainState:
    """A state at ``step`` whose parameters are recognisably those of that step."""
    params = jax.tree_util.tree_map(lambda x: x + step, state.params)
    return state.replace(step=jnp.asarray(step, jnp.int32), params=params)


@pytest.fixture(scope="module")
def trained():
    """A state after two real updates (non-trivial optimizer moments), and the abstract
    structure of one (as restore uses: nothing initialised or compiled)."""
    cfg = tiny_config()
    fresh = abstract_state(cfg)
    state = s2s.create_train_state(cfg, jax.random.key(0))
    for i in range(2):
        state, _ = s2s.train_step(state, random_batch(4, 7, 6, seed=i), jax.random.key(i))
    return state.replace(plateau=state.plateau._replace(scale=jnp.asarray(0.25, jnp.float32))), fresh


def abstract_state(cfg: s2s.Config) -> s2s.TrainState:
    return jax.eval_shape(functools.partial(s2s.create_train_state, cfg), jax.random.key(0))


def save_one(workdir: str, state: s2s.TrainState) -> None:
    ckpt = Checkpointer(workdir)
    ckpt.save(state, jax.random.key(0), {"config": state.config.to_dict(), **META})
    ckpt.close()


META = {"data_iterator": {"epoch": 3, "batch": 7},
        "loop": {"best": 12.5, "minutes": 1.5}}


def test_round_trip_restores_everything(trained, tmp_path):
    state, fresh = trained
    rng = jax.random.key(42)
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(state, rng, {"config": state.config.to_dict(), **META})
    ckpt.close()
    ckpt = Checkpointer(str(tmp_path), read_only=True)
    restored, restored_rng, meta = ckpt.restore(fresh, jax.random.key(0))
    ckpt.close()
    assert int(restored.step) == 2 and float(restored.lr_scale) == 0.25
    assert leaves_equal(restored.params, state.params) and leaves_equal(restored.opt_state, state.opt_state)
    assert jax.tree_util.tree_structure(restored.opt_state) == jax.tree_util.tree_structure(state.opt_state)
    assert np.array_equal(jax.random.key_data(restored_rng), jax.random.key_data(rng))
    assert s2s.Config.from_dict(meta.pop("config")) == state.config and meta == META
    assert all(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(restored))


def test_best_survives_rotation_and_is_replaced_only_by_a_better_one(trained, tmp_path):
    state, fresh = trained
    meta = {"config": state.config.to_dict(), **META}
    ckpt = Checkpointer(str(tmp_path), keep=1)
    for step in range(1, 8):
        best = {1: ("bleu", 10.0), 3: ("bleu", 30.0), 5: ("bleu", 20.0)}.get(step)
        ckpt.save(shifted(state, step), jax.random.key(step), meta, best)
    ckpt.wait()
    assert ckpt.steps() == [3, 7] and ckpt.step_of("best") == 3
    restored, _, _ = ckpt.restore(fresh, jax.random.key(0), "best")
    assert int(restored.step) == 3 and leaves_equal(restored.params, shifted(state, 3).params)
    restored, _, _ = ckpt.restore(fresh, jax.random.key(0), 3)
    assert int(restored.step) == 3
    # A better one replaces it; a lower metric is better for the loss.
    ckpt.save(shifted(state, 8), jax.random.key(8), meta, ("bleu", 31.0))
    ckpt.close()
    assert sorted(os.listdir(tmp_path / CHECKPOINTS)) == ["8"]
    ckpt = Checkpointer(str(tmp_path / "by_loss"), keep=1)
    for step, loss in ((1, 2.0), (2, 1.0), (3, 1.5), (4, None)):
        ckpt.save(shifted(state, step), jax.random.key(step), meta, None if loss is None else ("loss", loss))
    ckpt.close()
    assert sorted(os.listdir(tmp_path / "by_loss" / CHECKPOINTS)) == ["2", "4"]


def test_async_saves_hold_the_state_of_their_step(trained, tmp_path):
    """train_step donates the state's buffers; saves in flight must still write the values of
    their own step, and back-to-back saves must not race."""
    state, fresh = trained
    state = jax.tree_util.tree_map(jnp.copy, state)
    meta = {"config": state.config.to_dict(), **META}
    ckpt = Checkpointer(str(tmp_path), keep=5)
    expected = {}
    for i in range(3):
        expected[int(state.step)] = jax.tree_util.tree_map(np.array, state.params)
        ckpt.save(state, jax.random.key(i), meta)  # no wait: the next steps run while it writes
        state, _ = s2s.train_step(state, random_batch(4, 7, 6, seed=10 + i), jax.random.key(i))
    ckpt.close()
    ckpt = Checkpointer(str(tmp_path), read_only=True)
    assert ckpt.steps() == sorted(expected)
    for step, params in expected.items():
        restored, _, _ = ckpt.restore(fresh, jax.random.key(0), step)
        assert leaves_equal(restored.params, params), step
    ckpt.close()


def test_another_model_shape_is_refused(trained, tmp_path):
    state, _ = trained
    save_one(str(tmp_path), state)
    other = abstract_state(tiny_config(hidden_size=32))
    with pytest.raises(CheckpointError, match=r"written with model\.hidden_size=16, but this config has "
                                              r"model\.hidden_size=32\.$"):
        Checkpointer(str(tmp_path)).restore(other, jax.random.key(0))
    # Parameters that do not fit are refused even when the configs agree.
    mislabelled = other.replace(config=state.config)
    with pytest.raises(CheckpointError, match=r"checkpoints/2 holds \['params'\]\[.*\] of shape \(16,\); "
                                              r"this model needs \(32,\)\.$"):
        Checkpointer(str(tmp_path)).restore(mislabelled, jax.random.key(0))


def test_a_checkpoint_of_an_earlier_format_is_refused(trained, tmp_path, monkeypatch):
    """Format 2 stored the generator's vocabulary kernel as [dim, vocab]; such a checkpoint is
    refused in one sentence before any shape is compared."""
    state, _ = trained
    monkeypatch.setattr(checkpoint, "FORMAT", checkpoint.FORMAT - 1)
    save_one(str(tmp_path), state)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"checkpoints/2 was written by an earlier version of s2s_jax, whose "
                                              r"checkpoints this version does not read; train in a new workdir\.$"):
        Checkpointer(str(tmp_path)).restore(abstract_state(state.config), jax.random.key(0))


@pytest.mark.parametrize("change, field", [({"model": {"tgt_vocab_size": 12}}, "model.tgt_vocab_size"),
                                           ({"data": {"tokenizer": "word"}}, "data.tokenizer")])
def test_another_vocabulary_is_refused(trained, tmp_path, change, field):
    state, _ = trained
    save_one(str(tmp_path), state)
    target = state.replace(config=state.config.replace(**change))
    with pytest.raises(CheckpointError, match=rf"checkpoints/2 was written with {field}="):
        Checkpointer(str(tmp_path)).restore(target, jax.random.key(0))


def _flip_every_data_file(step_dir: str) -> None:
    for path in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True):
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0x01
        with open(path, "wb") as f:
            f.write(bytes(data))


def _truncate(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def _garble(path: str) -> None:
    with open(path, "wb") as f:
        f.write(b"garbage")


@pytest.mark.parametrize("damage", [
    lambda d: _truncate(os.path.join(d, "meta", "metadata")),
    lambda d: _garble(os.path.join(d, "state", "manifest.ocdbt")),
    _flip_every_data_file,
], ids=["truncated-meta", "garbled-manifest", "flipped-bits"])
def test_a_damaged_checkpoint_is_refused(trained, tmp_path, damage):
    state, fresh = trained
    save_one(str(tmp_path), state)
    damage(str(tmp_path / CHECKPOINTS / "2"))
    with pytest.raises(CheckpointError) as e:
        Checkpointer(str(tmp_path)).restore(fresh, jax.random.key(0))
    message = str(e.value)
    assert message.startswith("checkpoint ") and "checkpoints/2 is unreadable (" in message
    assert message.endswith("delete it to fall back to an earlier checkpoint.") and "\n" not in message
    assert len(message) < 400


def test_missing_checkpoint_names_what_exists(trained, tmp_path):
    state, fresh = trained
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(state, jax.random.key(0), {"config": state.config.to_dict(), **META})
    ckpt.wait()
    with pytest.raises(CheckpointError, match=r"no checkpoint 7 in .* \(steps saved: 2\)\.$"):
        ckpt.restore(fresh, jax.random.key(0), 7)
    ckpt.close()


@pytest.fixture(scope="module")
def workdir(trained, tmp_path_factory):
    """A run directory as train() leaves it: config.json, tokenizers, latest 4 and 6, best 5."""
    path = str(tmp_path_factory.mktemp("run"))
    cfg = s2s.get_preset("copy").replace(data={"synthetic_sizes": (50, 5, 5)})
    data = prepare_data(cfg, path)
    cfg = data.config.replace(model={"embed_dim": 8, "hidden_size": 16})
    atomic_write_text(os.path.join(path, "config.json"), cfg.to_json())
    state = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), abstract_state(cfg))
    meta = {"config": cfg.to_dict(), **META}
    ckpt = Checkpointer(path)
    for step in (4, 5, 6):
        ckpt.save(shifted(state, step), jax.random.key(step), meta, ("bleu", 50.0) if step == 5 else None)
    ckpt.close()
    return path, state


@pytest.mark.parametrize("which, step", [("best", 5), ("latest", 6), (4, 4)])
def test_restore_picks_the_checkpoint(workdir, which, step):
    path, state = workdir
    _, restored, _, tgt_tok = restore(path, which)
    assert int(restored.step) == step and leaves_equal(restored.params, shifted(state, step).params)
    assert tgt_tok.vocab_size == restored.config.model.tgt_vocab_size


def test_restore_is_read_only_and_falls_back_to_latest(workdir, tmp_path):
    path, _ = workdir
    copy = str(tmp_path / "run")
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("5"))  # the best one
    leftover = os.path.join(copy, CHECKPOINTS, "7.orbax-checkpoint-tmp-123")  # a save in progress elsewhere
    os.makedirs(leftover)
    _, restored, _, _ = restore(copy, "best")
    assert int(restored.step) == 6
    assert os.path.isdir(leftover) and sorted(os.listdir(os.path.join(copy, CHECKPOINTS))) == sorted(
        ["4", "6", "7.orbax-checkpoint-tmp-123"])


def test_restore_refuses_tokenizers_of_another_vocabulary(workdir, tmp_path):
    path, _ = workdir
    copy = str(tmp_path / "run")
    shutil.copytree(path, copy)
    tgt = tokenizer_path(copy, "tgt")
    with open(tgt) as f:
        tok = json.load(f)
    tok["symbols"] = tok["symbols"][:-1]
    atomic_write_text(tgt, json.dumps(tok))
    with pytest.raises(CheckpointError, match=r"tgt\.json has \d+ tokens but the model in .* was trained with "
                                              r"model\.tgt_vocab_size=\d+\.$"):
        restore(copy)


# Saves step 1, then starts saving step 2 and blocks just before Orbax commits it (all data written).
_SLOW_SAVER = """
import sys, time
import jax, jax.numpy as jnp
from orbax.checkpoint._src.path import atomicity
from s2s_jax.checkpoint import Checkpointer
from tests.test_checkpoint import big_state

async def blocked_finalize(self):
    print("COMMITTING", flush=True)
    time.sleep(600)

ckpt = Checkpointer(sys.argv[1])
ckpt.save(big_state(1), jax.random.key(1), {"config": big_state(1).config.to_dict()})
ckpt.wait()
atomicity.AtomicRenameTemporaryPath.finalize = blocked_finalize
ckpt.save(big_state(2), jax.random.key(2), {"config": big_state(2).config.to_dict()})
ckpt.wait()
"""


def big_state(step: int) -> s2s.TrainState:
    """A state of several megabytes, built without compiling a model."""
    cfg = tiny_config()
    params = {"w": jnp.full((512, 1024), float(step)), "b": jnp.arange(1024.0) * step}
    return s2s.TrainState(step=jnp.asarray(step, jnp.int32), params=params, opt_state={"m": params["w"] * 2},
                          plateau=plateau_schedule(cfg.train).init(params), config=cfg, model=None, tx=None,
                          lr_fn=None)


def test_sigkill_during_a_save_leaves_the_previous_checkpoint(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVER, str(tmp_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == "COMMITTING\n", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()
    entries = os.listdir(tmp_path / CHECKPOINTS)
    assert "1" in entries and "2" not in entries and any(e.startswith("2.orbax-checkpoint-tmp") for e in entries)
    reader = Checkpointer(str(tmp_path), read_only=True)
    assert reader.steps() == [1]
    restored, _, _ = reader.restore(big_state(0), jax.random.key(0))
    assert int(restored.step) == 1 and leaves_equal(restored.params, big_state(1).params)
    reader.close()
    # The next training run clears the half-written save away and can save that step again.
    writer = Checkpointer(str(tmp_path))
    writer.save(big_state(2), jax.random.key(2), {"config": big_state(2).config.to_dict()})
    writer.close()
    assert sorted(os.listdir(tmp_path / CHECKPOINTS)) == ["1", "2"]
