"""Small file helpers: outputs appear whole or not at all, storage failures say where and
why in one sentence, and one writer at a time holds a workdir."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

from s2s_jax.errors import DataError, StorageError, WorkdirBusyError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def decode_utf8(raw: bytes, name: str, first_line: int = 1) -> str:
    """``raw`` as UTF-8 text; invalid UTF-8 is a :class:`DataError` naming ``name`` (a file, or
    "standard input") and the line, numbered from ``first_line``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{name}:{line}: invalid UTF-8 (byte {column} of the line).") from None


def read_text(path: str) -> str:
    """The UTF-8 text of ``path``, decoded strictly (:func:`decode_utf8`)."""
    with open(path, "rb") as f:
        return decode_utf8(f.read(), path)


def close_on_exit(close: Callable[[], None], failing: bool) -> None:
    """A context manager's exit: ``close()``, whose own failure is dropped while another
    error is in flight (``failing``), since that error says more."""
    if not failing:
        close()
        return
    with contextlib.suppress(Exception):
        close()


def free_space(path: str) -> str:
    """The free space of the filesystem holding ``path`` (or its nearest existing parent), in words."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return f"{human_size(shutil.disk_usage(path).free)} free"
    except OSError:
        return "free space unknown"


def human_size(n: float) -> str:
    """``n`` bytes in KiB, MiB or GiB, one decimal."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.1f} KiB"


def storage_error(what: str, path: str, e: BaseException) -> StorageError:
    """One sentence for a failed write: what, where, the cause, and the free space there."""
    cause = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0] if str(e) else ""
    cause = cause or type(e).__name__
    return StorageError(f"{what} {path} failed: {cause} ({free_space(path)}).")


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to a temporary file beside ``path``; rename it over ``path`` only on success. A
    failed write leaves ``path`` as it was and raises :class:`StorageError`."""
    directory = os.path.dirname(os.path.abspath(path))
    blocker = directory
    while not os.path.exists(blocker) and os.path.dirname(blocker) != blocker:
        blocker = os.path.dirname(blocker)
    if not os.path.isdir(blocker):
        raise StorageError(f"writing {path} failed: {blocker} is a file, not a directory.")
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, StorageError):
            raise storage_error("writing", path, e) from None
        raise


def atomic_write_text(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


@contextlib.contextmanager
def workdir_lock(workdir: str, enabled: bool = True) -> Iterator[None]:
    """Hold the exclusive writer lock of ``workdir`` (``flock`` on ``WORKDIR/.lock``) while the
    block runs. The operating system drops it when the process ends, however it ends, so a
    killed run leaves no stale lock. A second writer is refused at once with
    :class:`WorkdirBusyError` naming the holder (PID and host). A filesystem without ``flock``
    (some network filesystems) gets a warning and no lock. ``enabled`` False (the processes of
    a multi-host run other than process 0) takes none."""
    if not enabled:
        yield
        return
    path = os.path.join(workdir, LOCK_FILE)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise storage_error("creating the lock file", path, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "an unknown process"
            raise WorkdirBusyError(f"{workdir} is in use by {holder}, which holds its lock; wait for it to "
                                   "finish or stop it, or use another workdir.") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise storage_error("locking", path, e) from None
            log.warning("%s: the filesystem cannot lock files (%s); make sure only one process writes this workdir.",
                        workdir, e.strerror)
            yield
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
