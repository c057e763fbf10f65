"""Atomic outputs, storage failures in one sentence, and the workdir's writer lock."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from s2s_jax.errors import DataError, StorageError, WorkdirBusyError
from s2s_jax.fileio import atomic_open, atomic_write_text, decode_utf8, workdir_lock
from s2s_jax.summary import MetricsWriter, read_metrics


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(str(path), "good\n")
    with pytest.raises(RuntimeError), atomic_open(str(path)) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "good\n" and os.listdir(tmp_path) == ["out.txt"]


def test_an_unwritable_path_is_one_sentence_naming_it(tmp_path):
    (tmp_path / "file").write_text("")
    target = str(tmp_path / "file" / "out.txt")
    with pytest.raises(StorageError, match=rf"^writing {re.escape(target)} failed: {re.escape(str(tmp_path / 'file'))} "
                                           r"is a file, not a directory\.$"):
        atomic_write_text(target, "x")
    os.chmod(tmp_path, 0o500)  # (root ignores permissions: then the write succeeds)
    try:
        atomic_write_text(str(tmp_path / "new.txt"), "x")
    except StorageError as e:
        assert re.fullmatch(rf"writing {re.escape(str(tmp_path / 'new.txt'))} failed: Permission denied "
                            r"\([\d.]+ [KMG]iB free\)\.", str(e))
    finally:
        os.chmod(tmp_path, 0o700)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_under_the_metrics_file_is_one_sentence(tmp_path):
    os.symlink("/dev/full", tmp_path / "metrics.jsonl")
    writer = MetricsWriter(str(tmp_path), tensorboard=False)
    with pytest.raises(StorageError, match=r"^appending to .*metrics\.jsonl failed: No space left on device "):
        writer.write(1, "train", {"loss": 1.0})


def test_metrics_records_are_whole_lines(tmp_path):
    with MetricsWriter(str(tmp_path), tensorboard=False) as writer:
        writer.write(1, "train", {"loss": 1.0})
        writer.write(2, "train", {"loss": 0.5})
    assert read_metrics(str(tmp_path)) == [{"step": 1, "split": "train", "loss": 1.0},
                                           {"step": 2, "split": "train", "loss": 0.5}]


def test_a_second_writer_is_refused_naming_the_holder_and_the_lock_ends_with_its_holder(tmp_path):
    workdir = str(tmp_path / "run")
    with workdir_lock(workdir):
        message = rf"^{re.escape(workdir)} is in use by PID {os.getpid()} on {re.escape(socket.gethostname())}, "
        with pytest.raises(WorkdirBusyError, match=message), workdir_lock(workdir):
            pass
        with workdir_lock(workdir, enabled=False):  # the other hosts of a multi-host run take none
            pass
    with workdir_lock(workdir):  # released
        pass
    # A holder that dies, however it dies, releases it: the lock belongs to its open file.
    code = ("import os, sys; from s2s_jax.fileio import workdir_lock\n"
            "with workdir_lock(sys.argv[1]):\n    os.kill(os.getpid(), 9)")
    assert subprocess.run([sys.executable, "-c", code, workdir]).returncode == -9
    with workdir_lock(workdir):
        pass


def test_invalid_utf8_names_the_line_and_the_byte():
    raw = "ä\nok\nxy".encode() + b"\xff" + b"z\n"
    with pytest.raises(DataError, match=r"^in\.txt:3: invalid UTF-8 \(byte 3 of the line\)\.$"):
        decode_utf8(raw, "in.txt")
    with pytest.raises(DataError, match=r"^standard input:12: "):
        decode_utf8(b"\xff", "standard input", first_line=12)
    assert decode_utf8("ä\n".encode(), "x") == "ä\n"


def test_a_metrics_record_cut_short_is_left_out(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "split": "train"}\n{"step": 2, "spl')
    assert read_metrics(str(tmp_path)) == [{"step": 1, "split": "train"}]
