"""Progress bars on standard error, for training, evaluation and translation. A module of its
own, on tqdm alone, so that the programs that only decode do not load the TensorBoard writer
and matplotlib of :mod:`s2s_jax.summary`."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(total: int | None, desc: str, quiet: bool = False, initial: int = 0, unit: str = "step",
             leave: bool = True) -> tqdm:
    """A progress bar on standard error, live only on a terminal and when not ``quiet``
    (a disabled bar accepts updates and prints nothing)."""
    return tqdm(total=total, initial=initial, disable=quiet or not sys.stderr.isatty(), file=sys.stderr,
                dynamic_ncols=True, desc=desc, unit=unit, leave=leave)
