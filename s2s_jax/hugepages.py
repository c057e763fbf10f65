"""glibc's malloc tuned for XLA:CPU's host buffers: huge pages, and freed buffers kept.

XLA:CPU allocates a step's temporary buffers afresh at every execution. glibc's malloc
serves the large ones with ``mmap`` and hands them back with ``munmap``, so each step faults
its whole working set in again, page by page, and the kernel zeroes every page first
(BENCHMARKS.md, "Huge pages"). Two sets of glibc tunables stop that:

- ``glibc.malloc.hugetlb=1`` (glibc >= 2.35) makes malloc ``madvise(MADV_HUGEPAGE)`` its
  memory, so where the kernel's transparent huge pages are in ``madvise`` mode (the usual
  default) it faults in 2 MiB at a time: eight times fewer faults. In ``always`` mode the
  kernel does so unasked; in ``never`` mode nothing can.
- ``glibc.malloc.mmap_max=0`` and a ``glibc.malloc.trim_threshold`` of 1 TiB (glibc >= 2.26)
  make malloc serve blocks from its heaps and never hand freed memory back, so the next
  step's buffers reuse the last step's pages instead of the kernel zeroing fresh ones (a
  threshold alone cannot: glibc caps ``mmap_threshold`` at 32 MiB, below XLA's buffers).
  A block that a worker thread's arena cannot hold in its heaps (64 MiB each) is still mapped
  and unmapped with ``mmap``, whatever ``mmap_max`` says: the ``lstm`` train step's 523 MB
  temporary buffer, about 510 faults a step. ``glibc.malloc.arena_max=1`` would keep it too,
  but did not change the step's median time (BENCHMARKS.md, "The step's temporary buffer"),
  so it is not set.

glibc reads its tunables only when a process starts, so the programs (``s2s-train``,
``s2s-eval``, ``s2s-translate``, the experiment scripts and the benchmarks) re-execute
themselves once with them added to ``GLIBC_TUNABLES`` (:func:`reexec_with_huge_pages`).
A ``GLIBC_TUNABLES`` that already names any of them is left as it is:
``GLIBC_TUNABLES=glibc.malloc.hugetlb=0`` turns this off. Notebooks and other callers of the
library get it by starting Python with the variable set (:func:`malloc_tunables`).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb"
TUNABLE_SINCE = (2, 35)  # the glibc release that added it
KEEP_FREED = {"glibc.malloc.mmap_max": "0", "glibc.malloc.trim_threshold": str(1 << 40)}
KEEP_FREED_SINCE = (2, 26)  # the first glibc with malloc tunables
NAMES = (TUNABLE, *KEEP_FREED)
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


def malloc_tunables(thp: str | None, glibc: tuple[int, int] | None) -> dict[str, str]:
    """The tunables worth setting for kernel mode ``thp`` and C library ``glibc``: huge pages
    where the mode is ``madvise`` and glibc >= 2.35, freed buffers kept where glibc >= 2.26,
    none elsewhere (musl, macOS)."""
    if glibc is None:
        return {}
    wanted = {TUNABLE: "1"} if thp == "madvise" and glibc >= TUNABLE_SINCE else {}
    return {**wanted, **KEEP_FREED} if glibc >= KEEP_FREED_SINCE else wanted


def tunable_setting(environ: Mapping[str, str], name: str = TUNABLE) -> str | None:
    """The value ``GLIBC_TUNABLES`` in ``environ`` gives the tunable ``name``, or None if it gives none."""
    for item in environ.get("GLIBC_TUNABLES", "").split(":"):
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


def set_tunables(environ: Mapping[str, str], values: Mapping[str, str | None]) -> dict[str, str]:
    """A copy of ``environ`` whose ``GLIBC_TUNABLES`` sets each tunable of ``values`` to its
    value, or no longer names it where the value is None; its other tunables are kept."""
    items = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t and t.partition("=")[0] not in values]
    items += [f"{name}={value}" for name, value in values.items() if value is not None]
    out = {k: v for k, v in environ.items() if k != "GLIBC_TUNABLES"}
    return {**out, "GLIBC_TUNABLES": ":".join(items)} if items else out


def without_malloc_tunables(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with none of this module's tunables: a process as a user starts it."""
    return set_tunables(environ, dict.fromkeys(NAMES))


def huge_page_environ(environ: Mapping[str, str], thp: str | None,
                      glibc: tuple[int, int] | None) -> dict[str, str] | None:
    """The environment to re-execute with (``environ`` plus :func:`malloc_tunables`), or None
    where that would change nothing: no tunable applies, or ``environ`` already names one of
    this module's tunables (to any value: the user's choice stands)."""
    wanted = malloc_tunables(thp, glibc)
    if not wanted or any(tunable_setting(environ, name) is not None for name in NAMES):
        return None
    return set_tunables(environ, wanted)


def reexec_with_huge_pages() -> None:
    """Replace this process (same PID, same command line) by one with :func:`malloc_tunables`,
    if :func:`huge_page_environ` says that would change something; else return. Call
    it first thing in a program's ``main``, never from a library or a test process."""
    environ = huge_page_environ(os.environ, thp_mode(), glibc_version())
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)


def describe(environ: Mapping[str, str] = os.environ) -> str:
    """One line for a program's log: whether this process's host buffers get huge pages, and why,
    and whether malloc keeps freed buffers."""
    kept = all(tunable_setting(environ, name) == value for name, value in KEEP_FREED.items())
    freed = "freed buffers kept" if kept else "freed buffers returned to the kernel"
    return f"host memory: {_pages(environ)}; {freed}"


def _pages(environ: Mapping[str, str]) -> str:
    thp, glibc, setting = thp_mode(), glibc_version(), tunable_setting(environ)
    if thp == "always":
        return "transparent huge pages (the kernel's mode is always)"
    if thp != "madvise":
        return f"4 KiB pages (the kernel's transparent huge pages: {thp or 'absent'})"
    if glibc is None or glibc < TUNABLE_SINCE:
        return "4 KiB pages (malloc cannot ask for huge pages: not glibc 2.35 or newer)"
    if setting in (None, "0"):
        return f"4 KiB pages (GLIBC_TUNABLES does not set {TUNABLE}=1)"
    return f"transparent huge pages (GLIBC_TUNABLES {TUNABLE}={setting})"
