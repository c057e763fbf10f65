"""Progress bars: drawn on a terminal's standard error only, never when quiet."""

from __future__ import annotations

import io

from s2s_jax.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_only_on_a_terminal_and_never_when_quiet(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert not progress(10, "x").disable
    assert progress(10, "x", quiet=True).disable
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress(10, "x").disable
