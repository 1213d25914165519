"""Matplotlib figures used by the notebooks, ``evaluate`` and the README.

Every function returns a Figure with a title, axis labels and class names.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib.pyplot as plt  # picks a headless backend by itself when there is no display

    return plt


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Confusion matrix",
                   normalize: bool = True):
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=float)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * k + 2), max(4, 0.5 * k + 1.5)))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(k), classes, rotation=90 if k > 12 else 45, ha="right" if k <= 12 else "center")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{cm[i, j]:.2f}" if normalize else int(cm[i, j]), ha="center", va="center",
                        fontsize=7, color="white" if cm[i, j] > 0.5 * cm.max() else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class" if normalize else "count")
    fig.tight_layout()
    return fig
