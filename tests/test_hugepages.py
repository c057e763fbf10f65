"""s2s_jax.hugepages: the programs re-execute themselves once with glibc's malloc tunables (huge
pages, freed buffers kept), keeping their PID, command line and the user's other tunables; a
user's own setting stands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.decode import TORCH_ENVS, run_torch, torch_variant
from s2s_jax.hugepages import (
    KEEP_FREED,
    TUNABLE,
    describe,
    glibc_version,
    huge_page_environ,
    malloc_tunables,
    set_tunables,
    thp_mode,
    tunable_setting,
    without_malloc_tunables,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAIN = without_malloc_tunables(os.environ)
WANTED = malloc_tunables(thp_mode(), glibc_version())
KEPT = ":".join(f"{k}={v}" for k, v in KEEP_FREED.items())


def test_thp_mode_is_the_bracketed_word(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert thp_mode(str(path)) == "madvise"
    path.write_text("[always] madvise never\n")
    assert thp_mode(str(path)) == "always"
    assert thp_mode(str(tmp_path / "absent")) is None


def test_set_tunables_keeps_the_other_tunables():
    env = {"HOME": "/h", "GLIBC_TUNABLES": f"glibc.malloc.tcache_count=0:{TUNABLE}=0:glibc.pthread.rseq=0"}
    others = "glibc.malloc.tcache_count=0:glibc.pthread.rseq=0"
    assert set_tunables(env, {TUNABLE: "1"}) == {"HOME": "/h", "GLIBC_TUNABLES": f"{others}:{TUNABLE}=1"}
    assert set_tunables(env, {TUNABLE: None}) == {"HOME": "/h", "GLIBC_TUNABLES": others}
    assert without_malloc_tunables({"GLIBC_TUNABLES": f"{TUNABLE}=1:{KEPT}"}) == {}
    assert tunable_setting(env) == "0" and tunable_setting({}) is None
    assert tunable_setting(env, "glibc.pthread.rseq") == "0"


def test_huge_page_environ_only_where_asking_changes_something():
    env = {"PATH": "/bin"}
    assert huge_page_environ(env, "madvise", (2, 36)) == {"PATH": "/bin", "GLIBC_TUNABLES": f"{TUNABLE}=1:{KEPT}"}
    # huge pages need asking only in madvise mode, and glibc 2.35; keeping freed buffers needs glibc 2.26
    for thp in ("always", "never", None):
        assert huge_page_environ(env, thp, (2, 36)) == {"PATH": "/bin", "GLIBC_TUNABLES": KEPT}
    assert huge_page_environ(env, "madvise", (2, 34)) == {"PATH": "/bin", "GLIBC_TUNABLES": KEPT}
    assert huge_page_environ(env, "madvise", (2, 25)) is None
    assert huge_page_environ(env, "madvise", None) is None  # musl, macOS
    for name in (TUNABLE, *KEEP_FREED):  # the user's choice
        assert huge_page_environ({"GLIBC_TUNABLES": f"{name}=0"}, "madvise", (2, 36)) is None


_PROGRAM = """
import os, sys
print("START", os.getpid(), flush=True)
from s2s_jax.hugepages import describe, reexec_with_huge_pages
reexec_with_huge_pages()
print("RUN", os.getpid(), sys.argv[1:], os.environ.get("GLIBC_TUNABLES"), describe(), sep="|")
"""


def _run(env: dict[str, str]) -> list[str]:
    return subprocess.run([sys.executable, "-c", _PROGRAM, "one", "two words"], env={**env, "PYTHONPATH": REPO},
                          capture_output=True, text=True, check=True).stdout.splitlines()


def test_reexec_keeps_the_pid_and_the_command_line_and_adds_the_tunables_once():
    lines = _run({**PLAIN, "GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"})
    pid = lines[0].split()[1]
    run = lines[-1].split("|")
    assert run[:3] == ["RUN", pid, "['one', 'two words']"]
    if WANTED:
        assert lines[:2] == [f"START {pid}"] * 2  # started again, as the same process
        assert run[3] == ":".join(["glibc.malloc.tcache_count=7", *(f"{k}={v}" for k, v in WANTED.items())])
        assert run[4].endswith("; freed buffers kept")
        if TUNABLE in WANTED:
            assert run[4].startswith(f"host memory: transparent huge pages (GLIBC_TUNABLES {TUNABLE}=1)")
    else:
        assert lines[:1] == [f"START {pid}"] and len(lines) == 2
        assert run[3] == "glibc.malloc.tcache_count=7"
        assert run[4] == describe(PLAIN)


def test_a_user_who_turns_it_off_is_not_reexecuted():
    lines = _run(set_tunables(PLAIN, {TUNABLE: "0"}))
    assert len(lines) == 2
    assert lines[1].split("|")[3] == f"{TUNABLE}=0"
    if thp_mode() == "madvise":
        assert lines[1].split("|")[4] == (f"host memory: 4 KiB pages (GLIBC_TUNABLES does not set {TUNABLE}=1); "
                                          "freed buffers returned to the kernel")


# malloc itself, as XLA:CPU calls it (NumPy madvises its own large arrays).
_TOUCH = """
import ctypes
def huge_kb():
    with open("/proc/self/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("AnonHugePages:"))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
before = huge_kb()
buffer = libc.malloc(64 << 20)  # 64 MiB, which malloc serves with mmap
ctypes.memset(buffer, 1, 64 << 20)
print(huge_kb() - before)
"""


@pytest.mark.skipif(TUNABLE not in WANTED or not os.path.exists("/proc/self/smaps_rollup"),
                    reason="needs transparent huge pages in madvise mode and glibc >= 2.35")
def test_the_tunable_gives_a_large_buffer_huge_pages():
    def grown_kb(value: str) -> int:
        return int(subprocess.run([sys.executable, "-c", _TOUCH], env=set_tunables(PLAIN, {TUNABLE: value}),
                                  capture_output=True, text=True, check=True).stdout)

    assert grown_kb("0") == 0
    assert grown_kb("1") >= 32 << 10  # at least half of the 64 MiB in 2-MiB pages


# A 64 MiB buffer freed and allocated again, as XLA:CPU does step after step: the page faults
# of touching it the second time (4 KiB pages, so a fresh mapping takes 16,384).
_REUSE = """
import ctypes, resource
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def touch():
    buffer = libc.malloc(64 << 20)
    ctypes.memset(buffer, 1, 64 << 20)
    return buffer
libc.free(touch())
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not WANTED, reason="needs glibc >= 2.26")
def test_kept_freed_buffers_are_reused_without_faulting_again():
    def faults(tunables: dict[str, str]) -> int:
        env = set_tunables(PLAIN, {TUNABLE: "0", **tunables})
        return int(subprocess.run([sys.executable, "-c", _REUSE], env=env, capture_output=True, text=True,
                                  check=True).stdout)

    assert faults({}) > 8192  # unmapped at free, mapped and faulted afresh
    assert faults(KEEP_FREED) < 512  # the same pages again


def test_the_benchmarks_run_the_reference_in_each_malloc_setting():
    cmd = [sys.executable, "-c", "import json, os; print('log'); print(json.dumps(os.environ.get('GLIBC_TUNABLES')))"]
    seen = {e: run_torch(cmd, e) for e in TORCH_ENVS}
    tuned = (seen["huge-pages"] or "").split(":")
    assert tuned[len(tuned) - len(WANTED):] == [f"{k}={v}" for k, v in WANTED.items()]
    assert all(n not in (seen["default"] or "") for n in (TUNABLE, *KEEP_FREED))
    assert [torch_variant("bfloat16", e) for e in TORCH_ENVS] == ["bfloat16", "bfloat16_huge_pages"]
