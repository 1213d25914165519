"""Matplotlib figures used by the notebooks, ``evaluate`` and the README.

Every function returns a Figure with a title, axis labels and class names.

One colour convention for drawings, everywhere: ink on paper -- pixel value 0
(background) is white, 255 (full ink) is black (colormap :data:`INK`), although
the files store white ink on black.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .drawing import IMAGE_SIZE, as_image_batch


INK = "gray_r"  # 0 = background = white paper, 255 = ink = black


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


# --------------------------------------------------------------------------- data (notebook 01)
def save_confusion_png(report, path: str | os.PathLike, title: str = "") -> Path:
    """Plot an ``EvalReport``'s row-normalised confusion matrix with class names to a PNG."""
    plt = _pyplot()
    fig = plot_confusion(report.confusion, report.classes,
                         title=title or f"Confusion matrix ({report.accuracy:.1%} accuracy)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_class_balance(counts: Sequence[int], classes: Sequence[str], title: str = "Drawings per class"):
    """Bar chart of how many drawings each class has, with the mean as a dashed line."""
    plt = _pyplot()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * k + 2), 3.6))
    ax.bar(range(k), counts, color="tab:blue")
    ax.axhline(float(np.mean(counts)), color="black", ls="--", lw=1, label=f"mean {np.mean(counts):,.0f}")
    ax.set_xticks(range(k), classes, rotation=45 if k <= 20 else 90, ha="right" if k <= 20 else "center")
    ax.set_xlabel("class")
    ax.set_ylabel("number of drawings")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_drawing_grid(images, labels, classes: Sequence[str], per_class: int = 8, seed: int = 0,
                      title: str = "Random drawings of every class"):
    """A grid: one row per class, ``per_class`` random drawings (seeded) in each row."""
    plt = _pyplot()
    images, labels = np.asarray(as_image_batch(images)[0]), np.asarray(labels)
    rng = np.random.default_rng(seed)
    k = len(classes)
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9 + 1.2, k * 0.9 + 0.6), squeeze=False)
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(pick):
                ax.imshow(images[pick[j]], cmap=INK, vmin=0, vmax=255, interpolation="nearest")
        axes[c, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.supxlabel("random drawings (28×28, ink dark)")
    fig.tight_layout()
    return fig


def plot_drawing_rows(rows: dict[str, object], title: str = "Drawings"):
    """One labelled row per entry of ``rows``: ``{label: drawings}``, each ``k`` drawings as uint8
    (0-255, as the files store them) or as floats normalised the way the model sees them
    (background -1, ink +1), e.g. the same drawings before and after an augmentation."""
    plt = _pyplot()
    batches = {}
    for label, drawings in rows.items():
        x = np.asarray(drawings.detach().cpu() if hasattr(drawings, "detach") else drawings)
        if x.dtype != np.uint8:
            x = np.clip((x.astype(np.float32) + 1) * 127.5, 0, 255)
        batches[label] = x.reshape(len(x), 28, 28)
    cols = max(len(x) for x in batches.values())
    fig, axes = plt.subplots(len(batches), cols, figsize=(cols * 0.9 + 1.6, len(batches) * 0.9 + 0.6),
                             squeeze=False)
    for ax_row, (label, x) in zip(axes, batches.items()):
        for j, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(x):
                ax.imshow(x[j], cmap=INK, vmin=0, vmax=255, interpolation="nearest")
        ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_mean_drawings(images, labels, classes: Sequence[str], title: str = "The mean drawing of every class"):
    """Pixel-wise mean of each class: where people put ink for that class."""
    plt = _pyplot()
    images, labels = np.asarray(as_image_batch(images)[0]), np.asarray(labels)
    k = len(classes)
    cols = min(k, 10)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3 + 0.9, rows * 1.5 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    means = [images[labels == c].mean(axis=0) if (labels == c).any() else np.zeros((IMAGE_SIZE, IMAGE_SIZE))
             for c in range(k)]
    top = max(float(np.max(means)), 1.0)  # one scale for every class, so panels compare
    for c, name in enumerate(classes):
        im = axes.flat[c].imshow(means[c], cmap=INK, vmin=0, vmax=top, interpolation="nearest")
        axes.flat[c].set_xlabel(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.colorbar(im, ax=axes, fraction=0.02, pad=0.02, label="mean pixel value\n(0 = never ink)")
    return fig


def plot_strokes_vs_bitmap(strokes, title: str = "One drawing: strokes and its 28×28 bitmap"):
    """The raw strokes, the simplified strokes (0..255) and the 28×28 bitmap the model sees."""
    from .rasterize import rasterize_strokes, simplify_strokes

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    raw = [np.column_stack([np.asarray(s[0], float), np.asarray(s[1], float)]) for s in strokes]
    simple = simplify_strokes(strokes)
    n_raw, n_simple = sum(len(p) for p in raw), sum(len(p) for p in simple)
    for ax, pts, name in ((axes[0], raw, f"raw strokes ({len(raw)} strokes, {n_raw} points)"),
                          (axes[1], simple, f"simplified (0..255, {n_simple} points)")):
        for p in pts:
            ax.plot(p[:, 0], p[:, 1], "-o", ms=2, lw=1.5)
        ax.set_aspect("equal")
        ax.invert_yaxis()  # screen coordinates: y grows downwards
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    axes[2].imshow(rasterize_strokes(strokes), cmap=INK, vmin=0, vmax=255, interpolation="nearest")
    axes[2].set_title("28×28 bitmap (what SketchCNN sees)", fontsize=10)
    axes[2].set_xlabel("pixel column")
    axes[2].set_ylabel("pixel row")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_stroke_stages(stages: dict[str, Sequence[np.ndarray]], bitmap: np.ndarray | None = None,
                       title: str = "From strokes to the model's input"):
    """One panel per stage of a drawing (``name -> [(n, 2) points per stroke]``, y pointing down,
    each point marked) and, when given, the 28×28 bitmap, black ink on white."""
    plt = _pyplot()
    panels = len(stages) + (bitmap is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.3 * panels, 3.6), squeeze=False)
    for ax, (name, strokes) in zip(axes.flat, stages.items()):
        for points in strokes:
            points = np.asarray(points, float).reshape(-1, 2)
            ax.plot(points[:, 0], points[:, 1], "-o", ms=2, lw=1.2)
        ax.set_aspect("equal")
        ax.invert_yaxis()  # screen coordinates: y grows downwards
        ax.set_title(f"{name}\n{sum(len(p) for p in strokes)} points", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    if bitmap is not None:
        ax = axes.flat[-1]
        ax.imshow(np.asarray(bitmap).reshape(IMAGE_SIZE, IMAGE_SIZE), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title("28×28 bitmap\n(what SketchCNN sees)", fontsize=9)
        ax.set_xlabel("pixel column")
        ax.set_ylabel("pixel row")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- model (notebook 02)
def plot_first_layer_filters(model, title: str = "First-layer filters (3×3)"):
    """The 3×3 kernels of the model's first convolution, each scaled to its own range."""
    plt = _pyplot()
    import torch

    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    w = conv.weight.detach().float().cpu().numpy()[:, 0]
    cols = 16
    rows = -(-len(w) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6 + 0.8), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < len(w):
            lim = float(np.abs(w[i]).max()) or 1.0
            ax.imshow(w[i], cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle(f"{title}: {len(w)} filters, red = positive, blue = negative weight")
    fig.supxlabel("filter index (row by row)")
    fig.tight_layout()
    return fig


def plot_cross_correlation(image, kernels: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                           title: str = "A 3×3 kernel slid over a drawing"):
    """A normalised drawing (−1 paper, +1 ink), then each kernel with its weights written in
    and the map it produces (red = positive, blue = negative, one colour scale per map)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 1 + 2 * len(kernels), figsize=(2.6 * (1 + 2 * len(kernels)), 3.0))
    axes[0].imshow(np.asarray(image), cmap=INK, vmin=-1, vmax=1, interpolation="nearest")
    axes[0].set_title("input (normalised)")
    for k, name in enumerate(kernels):
        kernel, out = np.asarray(kernels[name]), np.asarray(outputs[name])
        ax_k, ax_o = axes[1 + 2 * k], axes[2 + 2 * k]
        lim = float(np.abs(kernel).max()) or 1.0
        ax_k.imshow(kernel, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for (i, j), v in np.ndenumerate(kernel):
            ax_k.text(j, i, f"{v:g}", ha="center", va="center", fontsize=9)
        ax_k.set_title(f"kernel: {name}")
        lim = float(np.abs(out).max()) or 1.0
        ax_o.imshow(out, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax_o.set_title(f"output: {name}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_feature_maps(image, maps: dict[str, np.ndarray], channels: int = 8,
                      title: str = "What each block makes of one drawing"):
    """One row per stage: the drawing (uint8, ink on paper), then the ``channels`` maps of
    each stage's output ``(C, H, W)`` with the largest spread over the drawing, each on its
    own colour scale (red = positive, blue = negative)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(maps), channels + 1, figsize=(1.25 * (channels + 1), 1.4 * len(maps) + 0.5),
                             squeeze=False)
    for row, (name, fmap) in zip(axes, maps.items()):
        fmap = np.asarray(fmap)
        row[0].imshow(np.asarray(image).reshape(IMAGE_SIZE, IMAGE_SIZE), cmap=INK, vmin=0, vmax=255, interpolation="nearest")
        row[0].set_ylabel(f"{name}\n{fmap.shape[0]}×{fmap.shape[1]}×{fmap.shape[2]}", fontsize=8)
        for ax, c in zip(row[1:], np.argsort(-fmap.reshape(len(fmap), -1).std(axis=1))[:channels]):
            lim = float(np.abs(fmap[c]).max()) or 1.0
            ax.imshow(fmap[c], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"ch {c}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}: the {channels} channels with the largest spread per stage")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training (notebook 03)
def plot_training_curves(history: Sequence[dict], epochs: int | None = None, title: str = "Training",
                         events: dict[float, str] | None = None):
    """Loss and accuracy per epoch (train and held-out) from ``fit``'s history records;
    ``events`` ``{epoch: text}`` draws a labelled vertical line (e.g. where the learning rate drops)."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    _draw_curves(ax_loss, ax_acc, history, epochs)
    for epoch, text in (events or {}).items():
        for ax in (ax_loss, ax_acc):
            ax.axvline(epoch, color="gray", ls=":", lw=1)
            ax.annotate(text, (epoch, 0.98), xycoords=("data", "axes fraction"), ha="left", va="top",
                        fontsize=8, color="gray", xytext=(3, 0), textcoords="offset points")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw_curves(ax_loss, ax_acc, history, epochs):
    ep = [h["epoch"] for h in history]
    for ax in (ax_loss, ax_acc):
        ax.clear()
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(epochs or 1, len(ep)) + 0.5)
        ax.grid(alpha=0.3)
    ax_loss.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(ep, [h["val_loss"] for h in history], "s-", label="held-out")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_title("loss")
    ax_acc.plot(ep, [h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(ep, [h["val_accuracy"] for h in history], "s-", label="held-out")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        if history:
            ax.legend()


class LiveCurves:
    """A ``fit`` callback that redraws loss/accuracy curves after every epoch.

    In Jupyter the figure is displayed once and then updated in place (one output,
    no flicker); elsewhere it is just kept up to date in ``self.figure``.
    """

    def __init__(self, epochs: int | None = None, title: str = "Training (live)"):
        plt = _pyplot()
        self.epochs, self.title = epochs, title
        self.history: list[dict] = []
        self.figure, (self._ax_loss, self._ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
        plt.close(self.figure)  # shown through the display handle, not by the inline backend
        self._handle = None

    def __call__(self, record: dict) -> None:
        self.history.append(dict(record))
        _draw_curves(self._ax_loss, self._ax_acc, self.history, self.epochs)
        last = self.history[-1]
        held_out = "not measured" if last["val_accuracy"] is None else f"{last['val_accuracy']:.1%}"
        self.figure.suptitle(f"{self.title}: epoch {last['epoch']}, held-out accuracy {held_out}")
        self.figure.tight_layout()
        self._show()

    def _show(self) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython is installed with jupyter
            return
        if get_ipython() is None:
            return
        if self._handle is None:
            self._handle = display(self.figure, display_id=True)
        else:
            self._handle.update(self.figure)


def plot_lr_schedule(schedules: dict[str, Sequence[float]], steps_per_epoch: int,
                     title: str = "Learning rate schedule"):
    """Learning rate against epoch for one or more named schedules (``lr_schedule`` output)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, lrs in schedules.items():
        ax.plot(np.arange(len(lrs)) / max(steps_per_epoch, 1), lrs, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_lr_range_test(records: Sequence[dict], marks: dict[str, float] | None = None,
                       title: str = "Learning-rate range test"):
    """Loss after one batch at each learning rate of a range test (``scripts/lr_sweep.py``):
    every batch's loss (light) and the smoothed loss, against the learning rate on a log axis;
    ``marks`` ``{label: lr}`` draws labelled vertical lines. The loss axis stops a little above
    the starting loss (as fastai's plot does): the last batches' losses, where the run falls
    apart, would otherwise flatten everything before them (their height is in ``records``)."""
    plt = _pyplot()
    lrs = [r["lr"] for r in records]
    smoothed = [r["smoothed_loss"] for r in records]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot(lrs, [r["loss"] for r in records], color="tab:blue", alpha=0.3, lw=1, label="loss of each batch")
    ax.plot(lrs, smoothed, color="tab:blue", lw=2, label="smoothed")
    for i, (label, lr) in enumerate((marks or {}).items()):
        ax.axvline(lr, color=f"C{i + 1}", ls="--", lw=1, label=label)
    ax.set_xscale("log")
    lowest = min(min(smoothed), min(r["loss"] for r in records))
    ax.set_ylim(lowest - 0.1 * (smoothed[0] - lowest), 1.5 * smoothed[0])
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (cut off above 1.5 x the first)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_run_comparison(runs: dict[str, Sequence[dict]], title: str = "Held-out accuracy of whole runs"):
    """Held-out accuracy of several runs (``fit`` histories) against the epoch and against the
    number of drawings trained on, so runs of different length and data size compare."""
    plt = _pyplot()
    fig, (ax_epoch, ax_seen) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in runs.items():
        accuracy = [h["val_accuracy"] for h in history]
        ax_epoch.plot([h["epoch"] for h in history], accuracy, "o-", ms=3, label=name)
        ax_seen.plot(np.cumsum([h["images"] for h in history]) / 1000, accuracy, "o-", ms=3, label=name)
    ax_epoch.set_xlabel("epoch")
    ax_seen.set_xlabel("drawings trained on (thousands, repeats counted)")
    for ax in (ax_epoch, ax_seen):
        ax.set_ylabel("held-out accuracy")
        ax.set_ylim(0.8, 1.0)
        ax.grid(alpha=0.3)
    ax_seen.set_xscale("log")
    ax_seen.set_xticks([10, 20, 50, 100, 200, 500, 1000], ["10", "20", "50", "100", "200", "500", "1000"])
    ax_seen.minorticks_off()
    ax_epoch.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_per_class_accuracy(recall: Sequence[float], classes: Sequence[str], overall: float | None = None,
                            title: str = "Accuracy per class (held-out drawings)"):
    """Horizontal bars: the fraction of each class's drawings classified correctly (recall)."""
    plt = _pyplot()
    k = len(classes)
    order = np.argsort(recall)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.32 * k + 1.2)))
    ax.barh(range(k), np.asarray(recall)[order], color="tab:green")
    ax.set_yticks(range(k), [classes[i] for i in order])
    if overall is not None:
        ax.axvline(overall, color="black", ls="--", lw=1, label=f"overall {overall:.1%}")
        ax.legend(loc="lower right")
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction classified correctly")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_examples_needed(ks: Sequence[int], recalls: Sequence[float], old_changes: Sequence[float],
                         new_class: str, title: str = "How many examples are enough?"):
    """Teaching a class from K examples (notebook 06): the new class's recall and the change of the
    old classes' accuracy (points), each against K on a log axis."""
    plt = _pyplot()
    fig, (ax_new, ax_old) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_new.plot(ks, np.asarray(recalls) * 100, "o-")
    ax_new.set(ylabel="recall (%)", title=f"new class: {new_class}")
    ax_old.plot(ks, np.asarray(old_changes) * 100, "o-", color="C1")
    ax_old.axhline(0, color="gray", lw=0.5)
    ax_old.set(ylabel="change (points)", title="the old classes' accuracy")
    for ax in (ax_new, ax_old):
        ax.set(xscale="log", xlabel="examples K")
        ax.set_xticks(list(ks), [str(k) for k in ks])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confident_mistakes(labels, proba: np.ndarray, n: int = 12) -> np.ndarray:
    """Indices of the ``n`` wrong predictions with the highest predicted probability."""
    labels = np.asarray(labels)
    pred = proba.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    return wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:n]


def plot_confident_mistakes(images, labels, proba: np.ndarray, classes: Sequence[str], n: int = 12,
                            cols: int = 6, title: str = "Most confidently wrong drawings"):
    """Gallery of the wrong predictions the model was surest about: true vs predicted class."""
    plt = _pyplot()
    images = np.asarray(as_image_batch(images)[0])
    idx = confident_mistakes(labels, proba, n)
    rows = max(1, -(-n // cols))  # fixed layout, whatever the number of mistakes
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.8, rows * 2.1 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for ax, i in zip(axes.flat, idx):
        p = int(proba[i].argmax())
        ax.imshow(images[i], cmap=INK, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"true: {classes[int(np.asarray(labels)[i])]}\nsaid: {classes[p]} {proba[i, p]:.0%}",
                     fontsize=8)
    if not len(idx):
        axes.flat[0].set_title("no mistakes")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the game (notebook 07)
def _draw_strokes(ax, strokes) -> None:
    """A drawing's strokes (screen coordinates, y down) as dark ink on paper."""
    for stroke in strokes:
        ax.plot(np.asarray(stroke[0], float), np.asarray(stroke[1], float), color="#1a1a1a", lw=2,
                solid_capstyle="round")
    ax.set_aspect("equal")
    ax.invert_yaxis()


def _with_heat(ax, image, heat) -> None:
    """A 28x28 drawing as ink on paper, with a saliency map (0..1) laid over it in orange."""
    ax.imshow(np.asarray(image).reshape(28, 28), cmap=INK, vmin=0, vmax=255, interpolation="nearest")
    if heat is not None:
        heat = np.asarray(heat, float).reshape(28, 28)
        ax.imshow(heat, cmap="Oranges", vmin=0, vmax=1, alpha=0.85 * heat, interpolation="nearest")


def plot_game_summary(rounds, k: int = 3, title: str = "The game's summary"):
    """One row per round of a game (``widgets.RoundSummary`` each): the drawing with its prompt and
    how the round ended; the model's input with the saliency of its top guess and its top-3 (and
    the prompt's probability when it is not among them);
    for a lost round, the ``k`` drawings of its guess and the ``k`` of the prompt that the
    model's features put nearest to the player's. Fixed layout (``2 + 2k`` panels a row)."""
    plt = _pyplot()
    cols = 2 + 2 * k
    fig, axes = plt.subplots(max(1, len(rounds)), cols, figsize=(1.75 * cols, 2.5 * max(1, len(rounds)) + 0.4),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for row, r in zip(axes, rounds):
        res = r.result
        _draw_strokes(row[0], res.strokes)
        row[0].set_title(f"{res.prompt}\n{r.outcome}", fontsize=8, color="#2b8a3e" if res.won else "#c92a2a")
        _with_heat(row[1], res.image, r.heat)
        top = "\n".join(f"{c} {p:.0%}" for c, p in res.top3) or "(blank)"
        if res.top3 and res.prompt not in dict(res.top3):  # the rule's number, when not in the top-3
            top += f"\n({res.prompt} {r.p_prompt:.0%})"
        row[1].set_title("where it looked" if res.top3 else "", fontsize=8)
        row[1].set_xlabel(top, fontsize=8)
        if r.why:
            for ax, image in zip(row[2:2 + k], r.why["guessed_nearest"]):
                ax.imshow(image, cmap=INK, vmin=0, vmax=255, interpolation="nearest")
            for ax, image in zip(row[2 + k:], r.why["prompt_nearest"]):
                ax.imshow(image, cmap=INK, vmin=0, vmax=255, interpolation="nearest")
            row[2].set_title(f"nearest {r.why['guessed']}\n(its guess)", fontsize=8)
            row[2 + k].set_title(f"nearest {res.prompt}\n(the prompt)", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_threshold_curve(curve: dict, threshold: float, title: str = "Choosing the game's threshold"):
    """Youden's J (the mean over classes of true minus false positive rate) for each candidate
    threshold (``curve``: ``{"threshold": [...], "youden_j": [...]}``), the chosen one marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(curve["threshold"], curve["youden_j"], color="C0")
    ax.axvline(threshold, color="#c92a2a", lw=1, ls="--", label=f"chosen: {threshold:.2f}")
    ax.set(xlabel="threshold on the prompt's probability", ylabel="Youden's J (mean over classes)",
           xlim=(0, 1), title=title)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def plot_how_early(shares: dict[str, float], overall: float, title: str = "How much of the ink it needs"):
    """Per class, the median share of the ink at which the model recognises a drawing (the
    game's rule), sorted; ``overall`` (the median over all drawings) as a line."""
    plt = _pyplot()
    names = sorted(shares, key=lambda c: shares[c])
    fig, ax = plt.subplots(figsize=(6.4, 0.16 * len(names) + 1.2))
    ax.barh(range(len(names)), [100 * shares[c] for c in names], color="C0")
    ax.axvline(100 * overall, color="#c92a2a", lw=1, ls="--", label=f"all drawings: {overall:.0%}")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="median share of the ink drawn when recognised (%)", xlim=(0, 100), title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
