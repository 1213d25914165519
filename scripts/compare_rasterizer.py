"""Compare rasterised raw strokes with Google's real 28x28 bitmaps, class by class.

For every class with both ``strokes/<class>.ndjson`` (raw drawings) and
``quickdraw/<class>.npy`` (bitmaps) in the shared data folder, prints a
markdown table of the mean ink (sum of pixel values), bounding-box height and
width, and stroke thickness of the rasterised strokes next to the real
bitmaps, then an overall summary. The drawings are different ones, so only the
distributions can agree.

    python scripts/compare_rasterizer.py [--data ../shared/data] [--max-bitmaps 2000]
    python scripts/compare_rasterizer.py --checkpoint models/sketchcnn.pt

With ``--checkpoint`` it also answers the question that matters for the widget:
does a model trained on the bitmaps recognise rasterised strokes as well as
its held-out bitmaps? It prints both accuracies for the checkpoint's classes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from quicksketch_lib.rasterize import bbox_size, ink, rasterize_strokes, read_ndjson, stroke_thickness

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STATS = ("ink", "bbox_h", "bbox_w", "thickness")


def image_stats(images: np.ndarray) -> dict[str, float]:
    """Mean ink, bounding-box height/width and stroke thickness of a batch of bitmaps."""
    box = bbox_size(images)
    return {"ink": float(ink(images).mean()), "bbox_h": float(box[:, 0].mean()),
            "bbox_w": float(box[:, 1].mean()), "thickness": float(stroke_thickness(images).mean())}


def compare_class(data: Path, name: str, max_bitmaps: int) -> tuple[dict, dict, int, float]:
    """Stats of rasterised strokes and of real bitmaps for one class, plus count and seconds."""
    drawings = [r["drawing"] for r in read_ndjson(data / "strokes" / f"{name}.ndjson")]
    start = time.perf_counter()
    ours = np.stack([rasterize_strokes(d) for d in drawings]).reshape(len(drawings), -1)
    seconds = time.perf_counter() - start
    real = np.load(data / "quickdraw" / f"{name}.npy", mmap_mode="r")[:max_bitmaps]
    return image_stats(ours), image_stats(np.asarray(real)), len(drawings), seconds


def compare_all(data: Path, max_bitmaps: int = 2000) -> list[tuple[str, dict, dict, int, float]]:
    """``(class, ours, real, n_strokes, seconds)`` for every class with strokes and bitmaps."""
    names = sorted(p.stem for p in (data / "strokes").glob("*.ndjson")
                   if (data / "quickdraw" / f"{p.stem}.npy").is_file())
    return [(n, *compare_class(data, n, max_bitmaps)) for n in names]


def markdown_table(rows) -> str:
    """The per-class table: rasterised / real for each statistic, and the relative gap."""
    head = ("| class | n | ink ours / real | bbox h ours / real | bbox w ours / real "
            "| thickness ours / real | worst gap |\n|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for name, ours, real, n, _ in rows:
        cells = [f"{ours[k]:.4g} / {real[k]:.4g}" for k in STATS]
        gap = max(abs(ours[k] / real[k] - 1) for k in STATS)
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {gap:.0%} |")
    return "\n".join(lines)


def summary(rows) -> str:
    """Median and worst relative gap per statistic over classes, and rasterisation speed."""
    lines = ["| statistic | median gap | worst gap (class) | mean ratio ours/real |",
             "|---|---:|---:|---:|"]
    for k in STATS:
        ratios = np.array([ours[k] / real[k] for _, ours, real, _, _ in rows])
        worst = int(np.argmax(np.abs(ratios - 1)))
        lines.append(f"| {k} | {np.median(np.abs(ratios - 1)):.1%} | "
                     f"{abs(ratios[worst] - 1):.1%} ({rows[worst][0]}) | {ratios.mean():.3f} |")
    n = sum(r[3] for r in rows)
    seconds = sum(r[4] for r in rows)
    lines.append(f"\n{len(rows)} classes, {n} raw drawings rasterised at "
                 f"{n / seconds:.0f} drawings/s (one process).")
    return "\n".join(lines)


def strokes_vs_bitmaps(data: Path, checkpoint: Path) -> str:
    """Accuracy of ``checkpoint`` on rasterised raw strokes vs on its held-out bitmaps."""
    from quicksketch_lib.checkpoint import load_checkpoint
    from quicksketch_lib.data import load_folder
    from quicksketch_lib.evaluation import evaluate
    from quicksketch_lib.inference import Predictor

    ckpt = load_checkpoint(checkpoint)
    images, labels = [], []
    for label, name in enumerate(ckpt.classes):
        for record in read_ndjson(data / "strokes" / f"{name}.ndjson"):
            images.append(rasterize_strokes(record["drawing"]))
            labels.append(label)
    proba = Predictor.from_checkpoint(checkpoint, backend="torch").predict_proba(np.stack(images))
    stroke_acc = float((proba.argmax(1) == np.array(labels)).mean())
    folder = Path(ckpt.data.get("root") or data / "quickdraw")
    report = evaluate(ckpt, load_folder(folder, classes=ckpt.classes, per_class=ckpt.data.get("per_class")))
    return (f"{checkpoint}: {len(ckpt.classes)} classes\n"
            f"  rasterised raw strokes: {stroke_acc:.1%} of {len(labels)} drawings\n"
            f"  held-out bitmaps:       {report.accuracy:.1%} of {report.n} drawings ({report.subset})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with strokes/ and quickdraw/ (default: ../shared/data)")
    parser.add_argument("--max-bitmaps", type=int, default=2000,
                        help="real bitmaps per class to summarise (default 2000)")
    parser.add_argument("--checkpoint", type=Path,
                        help="also compare the model's accuracy on rasterised strokes and held-out bitmaps")
    args = parser.parse_args(argv)
    if not (args.data / "strokes").is_dir():
        raise SystemExit(f"error: {args.data / 'strokes'} not found; pass --data")
    if args.checkpoint:
        print(strokes_vs_bitmaps(args.data, args.checkpoint))
        return
    rows = compare_all(args.data, args.max_bitmaps)
    print(markdown_table(rows))
    print()
    print(summary(rows))


if __name__ == "__main__":
    main()
