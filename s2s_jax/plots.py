"""Figures: attention heatmaps and training curves (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def attention_heatmap(weights: np.ndarray, src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                      title: str = "", path: str | None = None) -> Figure:
    """Heatmap of attention ``weights`` [tgt_len, src_len] with the tokens as tick labels.

    Rows and columns beyond the given tokens (PAD) are cut off. Saved as PNG when
    ``path`` is given.
    """
    w = np.asarray(weights, np.float32)[:len(tgt_tokens), :len(src_tokens)]
    fig, ax = plt.subplots(figsize=(max(3.0, 0.35 * len(src_tokens) + 1.5), max(2.5, 0.35 * len(tgt_tokens) + 1.2)))
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), labels=list(src_tokens), rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), labels=list(tgt_tokens))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig
