"""Exact resume: a run interrupted (by signals and by a crash, mid-epoch and at an epoch
boundary) and resumed ends bitwise equal to an uninterrupted one; preemption by SIGTERM in a
real subprocess; non-finite losses stop the run without a poisoned save."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import s2s_jax as s2s
import s2s_jax.loop as loop_module
import s2s_jax.training.step as step_module
from s2s_jax.checkpoint import CHECKPOINTS, Checkpointer
from s2s_jax.cli import train_main
from s2s_jax.config import config_diff, get_field
from s2s_jax.errors import ConfigError, NonFiniteLossError
from s2s_jax.hugepages import describe, glibc_version, huge_page_environ, thp_mode, without_malloc_tunables
from s2s_jax.loop import run
from s2s_jax.summary import read_metrics

pytestmark = pytest.mark.xdist_group("resume")  # module fixtures built once

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.path.dirname(sys.executable), "s2s-train")
STEPS_PER_EPOCH = 6  # 48 pairs in batches of 8, one bucket
REAL_TRAIN_STEP = step_module.train_step  # the loop takes it from there (through s2s_jax.parallel)


def resume_config() -> s2s.Config:
    """Dropout, sampled scheduled sampling and a plateau schedule, so dropout keys, sampling
    keys, the plateau bookkeeping and the data order all have to continue exactly."""
    return s2s.get_preset("copy").replace(
        model={"embed_dim": 8, "hidden_size": 16, "dropout": 0.3},
        data={"synthetic_sizes": (48, 8, 8), "batch_size": 8, "bucket_lengths": (16,), "eval_batch_size": 8},
        train={"num_steps": 15, "eval_every": 3, "checkpoint_every": 4, "log_every": 5, "keep_checkpoints": 2,
               "learning_rate": 0.05, "lr_schedule": "plateau", "plateau_patience": 1, "best_metric": "loss",
               "scheduled_sampling": s2s.ScheduledSamplingConfig(schedule="linear", k=1.0, c=0.05, mode="sample"),
               "quiet": True},
        decode={"max_len_b": 14})


def flags(cfg: s2s.Config) -> list[str]:
    """s2s-train flags that turn the copy preset into ``cfg``."""
    out = ["--preset", "copy"]
    for field in config_diff(s2s.get_preset("copy"), cfg):
        value = get_field(cfg, field)
        values = value if isinstance(value, tuple) else (value,)
        out += ["--" + field.replace("_", "-"), *(str(v).lower() if isinstance(v, bool) else str(v) for v in values)]
    return out


def cached_init(init_params):
    """``init_params`` (deterministic) computed once per (model, key); each call gets fresh copies,
    since train_step donates them."""
    cache = {}

    def init(model, key):
        if isinstance(key, jax.core.Tracer):  # under jax.eval_shape: nothing to cache
            return init_params(model, key)
        k = (model, np.asarray(jax.random.key_data(key)).tobytes())
        if k not in cache:
            cache[k] = init_params(model, key)
        return jax.tree_util.tree_map(jnp.copy, cache[k])

    return init


@pytest.fixture(scope="module", autouse=True)
def shared_programs():
    """create_train_state jits the model's init and builds a new optimizer and schedule (closures)
    on each call, and jit keys its cache on them, so every train() would compile init and
    train_step anew. Here equal configs get the same objects, so this module's runs share them."""
    patch = pytest.MonkeyPatch()
    patch.setattr(step_module, "learning_rate_schedule", functools.cache(step_module.learning_rate_schedule))
    patch.setattr(step_module, "make_optimizer", functools.cache(step_module.make_optimizer))
    patch.setattr(step_module, "init_params", cached_init(step_module.init_params))
    yield
    patch.undo()


class Crash(Exception):
    pass


def interrupt_at(monkeypatch, step: int, how: str) -> None:
    """Make train_step deliver SIGTERM to this process, or crash, once it has done ``step``."""
    real = REAL_TRAIN_STEP

    def train_step(state, batch, key):
        state, m = real(state, batch, key)
        if int(state.step) == step:
            if how == "crash":
                raise Crash(step)
            os.kill(os.getpid(), signal.SIGTERM)
        return state, m

    monkeypatch.setattr(step_module, "train_step", train_step)


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


def record(r: dict) -> dict:
    """A metrics record without its timings (and without the window averages, which restart on resume)."""
    keys = ("step", "split", "loss", "bleu", "exact_match", "learning_rate", "grad_norm", "teacher_forcing_prob")
    return {k: r[k] for k in keys if k in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    return workdir, run(resume_config(), workdir)


def test_interrupted_and_resumed_equals_uninterrupted_bitwise(reference, tmp_path, monkeypatch):
    ref_dir, ref = reference
    cfg, workdir = resume_config(), str(tmp_path)
    checkpoints = os.path.join(workdir, CHECKPOINTS)

    interrupt_at(monkeypatch, 2, "signal")  # mid-epoch
    first = run(cfg, workdir)
    assert first.stopped == "signal" and int(first.state.step) == 2
    assert os.listdir(checkpoints) == ["2"]

    interrupt_at(monkeypatch, 7, "crash")  # no save of step 7: the resume starts at the best, step 6
    with pytest.raises(Crash):
        run(cfg, workdir)
    assert sorted(os.listdir(checkpoints)) == ["4", "6"]
    best_inode = os.stat(os.path.join(checkpoints, "6")).st_ino

    interrupt_at(monkeypatch, 2 * STEPS_PER_EPOCH, "signal")  # at an epoch boundary
    third = run(cfg, workdir)
    assert third.stopped == "signal" and int(third.state.step) == 12
    # The best of step 6 is left alone, not rewritten, unless an evaluation up to step 12 beat it
    # (which the uninterrupted run's metrics tell); then it is gone.
    losses = {r["step"]: r["loss"] for r in read_metrics(ref_dir) if r.get("split") == "validation"}
    if min((s for s in losses if s <= 12), key=losses.get) == 6:
        assert os.stat(os.path.join(checkpoints, "6")).st_ino == best_inode
    else:
        assert "6" not in os.listdir(checkpoints)

    monkeypatch.setattr(step_module, "train_step", REAL_TRAIN_STEP)
    last = run(cfg, workdir)
    assert last.stopped == "finished" and int(last.state.step) == 15
    assert float(ref.state.lr_scale) < 1.0  # the plateau schedule did act (and was carried across resumes)
    assert float(last.state.lr_scale) == float(ref.state.lr_scale)
    assert leaves_equal(last.state.params, ref.state.params)
    assert leaves_equal(last.state.opt_state, ref.state.opt_state)
    assert sorted(os.listdir(checkpoints)) == sorted(os.listdir(os.path.join(ref_dir, CHECKPOINTS)))
    assert [record(r) for r in read_metrics(workdir)] == [record(r) for r in read_metrics(ref_dir)]
    # The training clock runs on from the checkpoint each attempt resumed from.
    minutes = [r["minutes"] for r in read_metrics(workdir)]
    assert minutes == sorted(minutes)
    ckpt = Checkpointer(workdir, read_only=True)
    assert 0 < ckpt.read_meta(12)["loop"]["minutes"] <= minutes[-1]
    ckpt.close()


def test_a_workdir_of_another_config_is_refused_untouched(reference):
    ref_dir, _ = reference

    def snapshot() -> dict:
        return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
                for d, _, files in os.walk(ref_dir) for f in files}

    before = snapshot()
    with pytest.raises(ConfigError, match=r"holds a run with model\.hidden_size=16, not 32; use another workdir"):
        run(resume_config().replace(model={"hidden_size": 32}), ref_dir)
    assert snapshot() == before


def test_a_lost_config_json_is_restored_from_the_checkpoint_which_guards_the_resume(reference, tmp_path, monkeypatch):
    ref_dir, ref = reference
    cfg, workdir = resume_config(), str(tmp_path)
    config_json = os.path.join(workdir, "config.json")
    interrupt_at(monkeypatch, 4, "signal")
    run(cfg, workdir)
    os.remove(config_json)
    monkeypatch.setattr(step_module, "train_step", REAL_TRAIN_STEP)
    with pytest.raises(ConfigError, match=r"holds a run with train\.learning_rate=0\.05, not 0\.01"):
        run(cfg.replace(train={"learning_rate": 0.01}), workdir)
    assert not os.path.exists(config_json)

    last = run(cfg, workdir)
    with open(config_json, encoding="utf-8") as f, open(os.path.join(ref_dir, "config.json"), encoding="utf-8") as g:
        assert f.read() == g.read()
    assert leaves_equal(last.state.params, ref.state.params)


def poison_at(monkeypatch, step: int, field: str) -> None:
    """From ``step`` on, train_step returns NaN parameters and a non-finite ``field``."""
    real = REAL_TRAIN_STEP

    def train_step(state, batch, key):
        state, m = real(state, batch, key)
        if int(state.step) >= step:
            state = state.replace(params=jax.tree_util.tree_map(lambda x: x * jnp.nan, state.params))
            m = {**m, field: jnp.asarray(jnp.inf if field == "grad_norm" else jnp.nan)}
        return state, m

    monkeypatch.setattr(step_module, "train_step", train_step)


def latest_step(workdir: str) -> int | None:
    ckpt = Checkpointer(workdir, read_only=True)
    step = ckpt.step_of("latest")
    ckpt.close()
    return step


def assert_latest_is_good(workdir: str, step: int) -> None:
    """The latest checkpoint is ``step`` and restores to finite parameters."""
    ckpt = Checkpointer(workdir, read_only=True)
    assert ckpt.step_of("latest") == step
    cfg = s2s.Config.from_dict(ckpt.read_meta()["config"])
    abstract = jax.eval_shape(functools.partial(s2s.create_train_state, cfg), jax.random.key(0))
    state, _, _ = ckpt.restore(abstract, jax.random.key(0))
    ckpt.close()
    assert int(state.step) == step
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state.params))


def test_nan_loss_stops_the_cli_with_one_line_and_no_poisoned_save(tmp_path, monkeypatch, capsys):
    poison_at(monkeypatch, 8, "loss")  # 8 is a checkpoint step: it must not be saved
    with pytest.raises(SystemExit) as e:
        train_main([*flags(resume_config()), "--workdir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("s2s-train: error: the training loss became nan at step 8; stopped without saving "
                       "(checkpoint 6 is kept).")
    assert_latest_is_good(str(tmp_path), 6)


def test_infinite_gradient_norm_stops_before_its_parameters_are_saved(tmp_path, monkeypatch):
    poison_at(monkeypatch, 8, "grad_norm")  # the loss of step 8 is finite; its update is not
    with pytest.raises(NonFiniteLossError, match=r"gradient norm became inf at step 8; .*checkpoint 6 is kept"):
        run(resume_config(), str(tmp_path))
    assert_latest_is_good(str(tmp_path), 6)


def test_first_signal_asks_to_stop_and_makes_the_second_fatal():
    before = signal.getsignal(signal.SIGINT)
    with loop_module.Stop(None, 0.0).installed() as interrupts:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupts.signal == signal.SIGINT
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL == signal.getsignal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) == before


# Resumes with the s2s-train flags in argv; blocks after its second step so it can be signalled twice.
_RESUME_AND_BLOCK = """
import sys, time
import s2s_jax.training.step as step
from s2s_jax.cli import train_main

real, calls = step.train_step, []

def train_step(state, batch, key):
    if not calls:
        print("RESUMED", int(state.step), flush=True)
    calls.append(1)
    state, m = real(state, batch, key)
    if len(calls) == 2:
        print("BLOCKED", flush=True)
        # In short sleeps: a signal delivered to another thread does not wake a long sleep,
        # and Python runs its handler only when the main thread runs again.
        for _ in range(12000):
            time.sleep(0.05)
    return state, m

step.train_step = train_step
train_main(sys.argv[1:])
"""


def _wait_until_handled(pid: int, signum: int, timeout: float = 30.0) -> None:
    """Wait until process ``pid`` no longer catches ``signum`` (``SigCgt`` of /proc/PID/status):
    its handler has run and restored the default disposition. Sent before that, on a busy
    machine, a second signal of the kind would be pending with the first, and the two would
    reach the handler as one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        if not caught >> (signum - 1) & 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still catches signal {signum} after {timeout} s")


def test_sigterm_saves_and_exits_then_training_resumes_and_a_second_signal_is_fatal(tmp_path):
    workdir = str(tmp_path / "run")
    # Long enough to be signalled while it runs, short enough to end should the signal never come.
    cfg = resume_config().replace(train={"num_steps": 300, "eval_every": 1000, "checkpoint_every": 1000,
                                         "quiet": False})
    args = [*flags(cfg), "--workdir", workdir]
    # The second process reuses the first one's compiled programs.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    # Without the malloc tunables: the program re-executes itself (same PID) to add them.
    plain = without_malloc_tunables(env)
    proc = subprocess.Popen([BIN, *args], env=plain, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        log = []
        for line in proc.stderr:  # the loop logs "step N/M ..." every 5 steps once it runs
            log.append(line)
            if re.match(r"step \d+/300 ", line):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    expected = describe(huge_page_environ(plain, thp_mode(), glibc_version()) or plain)
    assert f"{expected}.\n" in log, log
    match = re.fullmatch(rf"s2s-train: interrupted; saved step (\d+) in {re.escape(workdir)}; "
                         r"run the same command to resume\.\n", out)
    assert match, out
    saved = int(match.group(1))
    assert saved >= 5 and latest_step(workdir) == saved

    proc = subprocess.Popen([sys.executable, "-c", _RESUME_AND_BLOCK, *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == f"RESUMED {saved}\n"
        assert proc.stdout.readline() == "BLOCKED\n"
        proc.send_signal(signal.SIGTERM)  # asks to stop after the current step...
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        _wait_until_handled(proc.pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # ...and the second one ends it while that step still runs
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.communicate()
    # Nothing was half-written: the latest checkpoint is the preemption's (or the regular save
    # of the first resumed step, when that was a checkpoint step) and restores.
    latest = latest_step(workdir)
    assert latest in (saved, saved + 1)
    assert_latest_is_good(workdir, latest)
