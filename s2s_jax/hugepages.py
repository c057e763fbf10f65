"""Transparent huge pages for XLA:CPU's host buffers, through glibc's malloc.

XLA:CPU allocates a step's temporary buffers afresh at every execution. glibc's malloc
serves the large ones with ``mmap`` and hands them back with ``munmap``, so each step faults
its whole working set in again, 4 KiB at a time (BENCHMARKS.md, "Huge pages": eight times
the faults, and the attention shape's step 14% slower, than with huge pages). glibc's
tunable ``glibc.malloc.hugetlb=1`` (glibc >= 2.35) makes malloc ``madvise(MADV_HUGEPAGE)``
its mappings, so where the kernel's transparent huge pages are in ``madvise`` mode (the
usual default) they fault in 2 MiB at a time. In ``always`` mode the kernel does so
unasked; in ``never`` mode nothing can.

glibc reads its tunables only when a process starts, so the programs (``s2s-train``,
``s2s-eval``, ``s2s-translate``, the experiment scripts and the benchmarks) re-execute
themselves once with the tunable added to ``GLIBC_TUNABLES`` (:func:`reexec_with_huge_pages`).
A ``GLIBC_TUNABLES`` that already names ``glibc.malloc.hugetlb`` is left as it is:
``GLIBC_TUNABLES=glibc.malloc.hugetlb=0`` turns this off. Notebooks and other callers of the
library get it by starting Python with the variable set.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb"
TUNABLE_SINCE = (2, 35)  # the glibc release that added it
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_mode(path: str = THP_ENABLED) -> str | None:
    """The kernel's transparent huge page mode (``always``, ``madvise`` or ``never``, the
    bracketed word of ``path``), or None where the kernel has no such file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the C library this interpreter runs on, or None if it is not glibc."""
    lib, version = platform.libc_ver()
    if lib != "glibc":
        return None
    major, _, minor = version.partition(".")
    try:
        return int(major), int(minor.partition(".")[0])
    except ValueError:
        return None


def _has_tunable(glibc: tuple[int, int] | None) -> bool:
    return glibc is not None and glibc >= TUNABLE_SINCE


def tunable_setting(environ: Mapping[str, str]) -> str | None:
    """The value ``GLIBC_TUNABLES`` in ``environ`` gives :data:`TUNABLE`, or None if it gives none."""
    for item in environ.get("GLIBC_TUNABLES", "").split(":"):
        name, _, value = item.partition("=")
        if name == TUNABLE:
            return value
    return None


def set_tunable(environ: Mapping[str, str], value: str | None) -> dict[str, str]:
    """A copy of ``environ`` whose ``GLIBC_TUNABLES`` sets :data:`TUNABLE` to ``value``, or no
    longer names it if ``value`` is None; its other tunables are kept."""
    items = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t and t.partition("=")[0] != TUNABLE]
    if value is not None:
        items.append(f"{TUNABLE}={value}")
    out = {k: v for k, v in environ.items() if k != "GLIBC_TUNABLES"}
    return {**out, "GLIBC_TUNABLES": ":".join(items)} if items else out


def huge_page_environ(environ: Mapping[str, str], thp: str | None,
                      glibc: tuple[int, int] | None) -> dict[str, str] | None:
    """The environment to re-execute with so that malloc asks for huge pages, or None where
    that would change nothing: the kernel's mode is not ``madvise`` (``always`` needs no asking,
    ``never`` refuses), the C library is not glibc >= 2.35, or ``environ`` already sets the
    tunable (to any value: the user's choice stands)."""
    if thp != "madvise" or not _has_tunable(glibc) or tunable_setting(environ) is not None:
        return None
    return set_tunable(environ, "1")


def reexec_with_huge_pages() -> None:
    """Replace this process (same PID, same command line) by one whose malloc asks for huge
    pages, if :func:`huge_page_environ` says that would change something; else return. Call
    it first thing in a program's ``main``, never from a library or a test process."""
    environ = huge_page_environ(os.environ, thp_mode(), glibc_version())
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)


def describe(environ: Mapping[str, str] = os.environ) -> str:
    """One line for a program's log: whether this process's host buffers get huge pages, and why."""
    thp, glibc, setting = thp_mode(), glibc_version(), tunable_setting(environ)
    if thp == "always":
        return "host memory: transparent huge pages (the kernel's mode is always)"
    if thp != "madvise":
        return f"host memory: 4 KiB pages (the kernel's transparent huge pages: {thp or 'absent'})"
    if not _has_tunable(glibc):
        return "host memory: 4 KiB pages (malloc cannot ask for huge pages: not glibc 2.35 or newer)"
    if setting in (None, "0"):
        return f"host memory: 4 KiB pages (GLIBC_TUNABLES does not set {TUNABLE}=1)"
    return f"host memory: transparent huge pages (GLIBC_TUNABLES {TUNABLE}={setting})"
