"""The faults users hit, tried as they hit them, with real processes: a second writer on a busy
workdir, a run killed with SIGKILL, a disk that fills during a save, undecodable input, and a
workdir of an earlier version. Each ends in one sentence and leaves the run intact."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import s2s_jax as s2s
from s2s_jax.summary import read_metrics
from tests.test_translator import build_workdir

pytestmark = pytest.mark.xdist_group("cli_faults")  # the processes share one compilation cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
FLAGS = ["--preset", "copy", "--model.embed-dim", "8", "--model.hidden-size", "16", "--data.synthetic-sizes", "48",
         "8", "8", "--data.batch-size", "8", "--data.bucket-lengths", "16", "--decode.max-len-b", "14",
         "--train.eval-every", "5", "--train.log-every", "1", "--train.keep-checkpoints", "1"]

# s2s-train with the flags after the first two arguments; before step N (the second argument)
# it prints HOLDING and waits until the file named by the first argument exists.
_HOLD_AT_STEP = """
import os, sys, time
import s2s_jax.training.step as step
from s2s_jax.cli import train_main

real, release, hold = step.train_step, sys.argv[1], int(sys.argv[2])

def train_step(state, batch, key):
    if int(state.step) + 1 == hold:
        print("HOLDING", flush=True)
        while not os.path.exists(release):
            time.sleep(0.05)
    return real(state, batch, key)

step.train_step = train_step
train_main(sys.argv[3:])
"""


def held(release: str, step: int, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """s2s-train holding before ``step`` until ``release`` exists, once it says HOLDING."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_AT_STEP, release, str(step), *FLAGS, *args], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line != "HOLDING\n":
        proc.kill()
        pytest.fail(f"the run did not start: {proc.communicate()[1]}")
    return proc


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = str(tmp_path_factory.mktemp("xla"))
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO, "JAX_COMPILATION_CACHE_DIR": cache,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def train(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(BIN, "s2s-train"), *FLAGS, *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def final_params(workdir: str):
    return s2s.restore(workdir, "latest").state.params


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env) -> str:
    """An uninterrupted run of 10 steps."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    done = train(["--workdir", workdir, "--train.num-steps", "10", "--train.checkpoint-every", "5"], env)
    assert done.returncode == 0, done.stderr
    return workdir


def test_a_second_writer_is_refused_while_the_first_finishes_unharmed(tmp_path, env, reference):
    workdir, release = str(tmp_path / "run"), str(tmp_path / "release")
    args = ["--workdir", workdir, "--train.num-steps", "10", "--train.checkpoint-every", "5", "--train.quiet"]
    first = held(release, 2, args, env)
    try:
        second = train(args, env)  # the same command again, as a resubmitted job runs it
        assert second.returncode == 2
        assert re.fullmatch(rf"s2s-train: error: {re.escape(workdir)} is in use by PID {first.pid} on "
                            rf"{re.escape(socket.gethostname())}, which holds its lock; wait for it to finish or "
                            r"stop it, or use another workdir\.\n", second.stderr), second.stderr
        open(release, "w").close()
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    records = [(r["step"], r["split"]) for r in read_metrics(workdir)]
    assert len(records) == len(set(records)) and records == [(r["step"], r["split"]) for r in read_metrics(reference)]
    assert leaves_equal(final_params(workdir), final_params(reference))


def test_a_run_killed_with_sigkill_leaves_no_lock_and_resumes_at_once(tmp_path, env, reference):
    workdir = str(tmp_path / "run")
    args = ["--workdir", workdir, "--train.num-steps", "10", "--train.checkpoint-every", "5"]
    proc = held(str(tmp_path / "never"), 7, args, env)
    try:
        deadline = time.monotonic() + 60
        while not os.path.isdir(os.path.join(workdir, "checkpoints", "5")):  # its asynchronous save committed
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()
    assert os.path.exists(os.path.join(workdir, ".lock"))
    again = train(args, env)
    assert again.returncode == 0, again.stderr
    assert f"Resumed {workdir} at step 5." in again.stderr
    assert leaves_equal(final_params(workdir), final_params(reference))


@pytest.fixture
def small_disk(tmp_path):
    """A 350 KiB tmpfs: room for a run directory with one checkpoint of the tiny model (about
    300 KiB), not two (about 520)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=350k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {done.stderr.decode().strip()}")
    yield str(mount)
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_the_run_in_one_sentence_and_a_resume_after_freeing_space_is_exact(small_disk, env,
                                                                                             reference):
    workdir = os.path.join(small_disk, "run")
    args = ["--workdir", workdir, "--train.num-steps", "10", "--train.checkpoint-every", "5", "--train.quiet"]
    full = train(args, env)
    assert full.returncode == 2
    # Which write meets the full disk first depends on the size Orbax's files take (it varies from
    # run to run) and on the asynchronous save's timing; each names what failed in one sentence.
    failed = "|".join([rf"saving checkpoint \d+ into {re.escape(workdir)}/checkpoints",
                       rf"appending to {re.escape(workdir)}/metrics\.jsonl",
                       rf"writing TensorBoard events into {re.escape(workdir)}/tensorboard/\w+"])
    assert re.fullmatch(rf"s2s-train: error: ({failed}) failed: No space left on device \([\d.]+ [KMG]iB free\)"
                        r"(; the earlier checkpoints are intact)?\.\n", full.stderr), full.stderr
    assert s2s.restore(workdir, "latest").state.step == 5  # the previous checkpoint stays restorable
    subprocess.run(["mount", "-o", "remount,size=4m", small_disk], check=True)
    resumed = train(args, env)
    assert resumed.returncode == 0, resumed.stderr
    assert leaves_equal(final_params(workdir), final_params(reference))
    records = [(r["step"], r["split"]) for r in read_metrics(workdir)]
    assert records == [(r["step"], r["split"]) for r in read_metrics(reference)]


@pytest.fixture(scope="module")
def translator_workdir(tmp_path_factory) -> str:
    return build_workdir(str(tmp_path_factory.mktemp("translator")))


def test_invalid_utf8_input_names_the_line_and_leaves_the_output_untouched(translator_workdir, tmp_path, env):
    bad = b"abc\nd\xffe\nfgh\n"
    path, out = tmp_path / "in.txt", tmp_path / "out.txt"
    path.write_bytes(bad)
    out.write_text("kept\n")
    prog = os.path.join(BIN, "s2s-translate")
    for args, stdin, where in ((["-i", str(path)], None, str(path)), ([], bad, "standard input")):
        done = subprocess.run([prog, "--workdir", translator_workdir, "-o", str(out), *args], input=stdin, env=env,
                              capture_output=True, timeout=300)
        assert done.returncode == 2
        assert done.stderr.decode() == f"s2s-translate: error: {where}:2: invalid UTF-8 (byte 2 of the line).\n"
        assert out.read_text() == "kept\n"


def test_a_workdir_of_an_earlier_version_is_refused_in_one_sentence(translator_workdir, tmp_path, env):
    old = tmp_path / "old"
    shutil.copytree(translator_workdir, old)
    (old / "checkpoints_best").mkdir()
    done = subprocess.run([os.path.join(BIN, "s2s-translate"), "--workdir", str(old)], input=b"abc\n", env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.decode() == (f"s2s-translate: error: {old} holds checkpoints in the layout of an earlier "
                                    "s2s_jax (checkpoints_best/), which this version does not read; train in a new "
                                    "workdir.\n")


def test_a_config_json_that_is_not_utf8_names_the_line(translator_workdir, tmp_path, env):
    damaged = tmp_path / "damaged"
    shutil.copytree(translator_workdir, damaged)
    text = (damaged / "config.json").read_bytes().split(b"\n")
    (damaged / "config.json").write_bytes(b"\n".join([*text[:2], text[2] + b"\xff", *text[3:]]))
    done = subprocess.run([os.path.join(BIN, "s2s-translate"), "--workdir", str(damaged)], input=b"abc\n", env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 2
    assert re.fullmatch(rf"s2s-translate: error: {re.escape(str(damaged / 'config.json'))}:3: invalid UTF-8 "
                        r"\(byte \d+ of the line\)\.\n", done.stderr.decode()), done.stderr


def test_an_unwritable_output_is_one_sentence_naming_it(translator_workdir, tmp_path, env):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "out.txt"
    done = subprocess.run([os.path.join(BIN, "s2s-translate"), "--workdir", translator_workdir, "-o", str(out)],
                          input=b"abc\n", env=env, capture_output=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.decode() == (f"s2s-translate: error: writing {out} failed: {tmp_path / 'file'} is a file, "
                                    "not a directory.\n")
