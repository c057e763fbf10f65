"""s2s-translate: a file gives the Python API's lines, n-best lists print as score<TAB>text,
standard input is translated line by line as it arrives, and user errors end in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import s2s_jax as s2s
from s2s_jax.cli import translate_main
from s2s_jax.compilation_cache import default_cache_dir
from tests.test_translator import SENTENCES, build_workdir

pytestmark = pytest.mark.xdist_group("translator_run")  # shares build_workdir with test_translator.py

BIN = os.path.join(os.path.dirname(sys.executable), "s2s-translate")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> str:
    return build_workdir(str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def translator(workdir) -> s2s.Translator:
    return s2s.Translator.from_workdir(workdir)


@pytest.fixture
def source(tmp_path) -> str:
    """SENTENCES (with empty and over-long lines) as a file with Windows line ends on one line."""
    path = tmp_path / "in.txt"
    lines = [*SENTENCES, "z9" * 12]
    path.write_bytes(("\n".join(lines[:-1]) + "\r\n" + lines[-1] + "\n").encode())
    return str(path)


def test_a_file_gives_the_python_apis_lines(workdir, translator, source, tmp_path, capsys):
    out = tmp_path / "out" / "hyps.txt"
    translate_main(["--workdir", workdir, "-i", source, "-o", str(out), "--batch-size", "4"])
    assert capsys.readouterr().out == ""
    expected = translator.translate([*SENTENCES, "z9" * 12])
    assert out.read_text().split("\n") == [*expected, ""]
    assert os.listdir(out.parent) == ["hyps.txt"]  # written through a temporary file, renamed at the end


def test_n_best_prints_k_scored_lines_per_input(workdir, translator, source, capsys):
    translate_main(["--workdir", workdir, "-i", source, "--beam-size", "3", "--n-best", "2", "--checkpoint", "3"])
    hyps = translator.translate([*SENTENCES, "z9" * 12], beam_size=3, n_best=2)
    assert capsys.readouterr().out.splitlines() == [f"{h.score:.4f}\t{h.text}" for hs in hyps for h in hs]


def test_standard_input_is_translated_line_by_line_as_it_arrives(workdir, translator):
    proc = subprocess.Popen([BIN, "--workdir", workdir], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        # Each answer is read before the next line is written: nothing waits for the end of the input.
        for sentence in ("abc", "", "q7z0kx1m2n"):
            proc.stdin.write(sentence + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == translator.translate([sentence])[0] + "\n"
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == ""
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()


def test_the_program_keeps_its_compiled_programs_in_the_users_cache(workdir, translator, source, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # the tests' own cache
    env.update(JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out = tmp_path / "out.txt"
    done = subprocess.run([BIN, "--workdir", workdir, "-i", source, "-o", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text().split("\n")[:-1] == translator.translate([*SENTENCES, "z9" * 12])
    entries = os.listdir(default_cache_dir({"XDG_CACHE_HOME": str(tmp_path / "cache")}))
    assert any(e.startswith("jit_greedy_decode-") for e in entries), entries


@pytest.mark.parametrize("args, message", [
    (["--n-best", "2"], "n_best=2 needs a beam_size of at least 2 (got 1)."),
    (["--checkpoint", "99"], "no checkpoint 99 in "),
    (["-i", "missing.txt"], "No such file or directory: 'missing.txt'"),
    (["--batch-size", "-1"], "--batch-size must be >= 0, got -1"),
])
def test_user_errors_end_in_one_line(workdir, args, message, capsys, tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(SystemExit) as e:
        translate_main(["--workdir", workdir, "-o", str(out), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("s2s-translate: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_directory_without_a_run_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        translate_main(["--workdir", str(tmp_path), "-i", os.devnull])
    assert capsys.readouterr().err == f"s2s-translate: error: {tmp_path} holds no config.json; it is not a " \
                                      "training workdir.\n"
