"""How early the model knows a drawing: the README "Play" figure and notebook 07's.

Every raw stroke drawing of every class the model knows (``$QUICKSKETCH_STROKES``, else
data/strokes: Google's raw ``.ndjson`` files, a different source from the training bitmaps)
is replayed stroke by stroke -- at each stroke's end and, within strokes, every ``--step``
(5 %) of the drawing's ink, measured by stroke length -- through the game's predictor
(``game.live_predictor``: the model as the game runs it). A drawing is recognised at the first
share of its ink where its class's probability passes the game's threshold (the model's,
``game.model_threshold``, or ``--threshold``); for comparison with the issue's baseline also
where it first passes 0.5. Per class and overall: the median share of the ink at which the
drawings are recognised (over the drawings recognised at all) and the share never recognised,
even when finished; overall also judged only at the ends of strokes ("stroke_ends_only", how
the issue's baseline of 69 % at 0.5 was measured: the game also guesses while the pen moves). ::

    .venv/bin/python scripts/how_early.py pretrained --json notebooks/runs/how_early.json
    .venv/bin/python scripts/how_early.py models/pilot.pt --name pilot-learner --threshold 0.1 --json ...

``--json`` adds (or replaces) the model's entry under "models" in that file, with the command,
the CPU, threads and load it ran at.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.bench import cpu_flags, machine_info
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.game import first_passing, live_predictor, model_threshold, recognition_curve
from quicksketch_lib.locations import strokes_dir
from quicksketch_lib.rasterize import read_ndjson

ABOUT = ("scripts/how_early.py: share of the ink (by stroke length) at which the game recognises held-out raw "
         "stroke drawings; median over the drawings recognised, 'never' = share never recognised (even finished)")
REFEREES = (0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)  # thresholds the referee table compares (with the model's)
BASELINE = 0.5  # the figure for today's ten-class model: first past 0.5 at a median of 69 % of the ink


def summarise(points: list[float | None]) -> dict:
    """Median share of the ink among the drawings recognised, and the share never recognised."""
    known = [p for p in points if p is not None]
    return {"drawings": len(points), "median_share": round(statistics.median(known), 4) if known else None,
            "never": round(1 - len(known) / len(points), 4) if points else None}


def how_early(predictor, folder: Path, thresholds: dict[str, float], step: float) -> dict:
    """Per class of the predictor with a stroke file in ``folder``: for each named threshold,
    the first share of the ink past it, per drawing (None: never); ``<name>_stroke_ends``: the
    same judged only at the ends of strokes; ``others_peak`` and ``others_finished``: per
    drawing, every class's highest probability during the replay and at its end, NaN for its own
    class (what a round prompting another class would see: the referee's wrong wins, :func:`wrong_wins`)."""
    out = {}
    for c, name in enumerate(predictor.classes):
        path = folder / f"{name}.ndjson"
        if not path.is_file():
            continue
        points = {f"{key}{at}": [] for key in thresholds for at in ("", "_stroke_ends")}
        points["others_peak"], points["others_finished"] = [], []
        for record in read_ndjson(path):
            shares, proba, ends = recognition_curve(predictor, record["drawing"], step)
            for key, t in thresholds.items():
                points[key].append(first_passing(shares, proba[:, c], t))
                points[f"{key}_stroke_ends"].append(first_passing(shares[ends], proba[ends, c], t))
            peak = proba.max(axis=0) if len(proba) else np.zeros(proba.shape[1])
            finished = proba[-1].copy() if len(proba) else np.zeros(proba.shape[1])
            peak[c] = finished[c] = np.nan  # its own class: not a wrong win
            points["others_peak"].append(peak)
            points["others_finished"].append(finished)
        out[name] = points
    return out


def wrong_wins(points: dict, threshold: float, classes: list[str], most: int = 5) -> dict:
    """How often the game's rule would let a drawing win a round that prompted another class.
    Over every (drawing, other class) pair: the share in which that class's probability passes
    ``threshold`` at some point of the replay, the finished drawing included (``during``), and
    on the finished drawing (``finished``); the share of drawings that would win at least one
    other class's round; and the ``most`` prompts whose rounds other drawings win most often
    (``easiest_prompts``: the share of other classes' drawings that would win that round)."""
    peak = np.concatenate([np.stack(per["others_peak"]) for per in points.values()])  # NaN: own class
    done = np.concatenate([np.stack(per["others_finished"]) for per in points.values()])
    other = ~np.isnan(peak)
    wins = np.where(other, peak, -1) >= threshold
    by_prompt = {classes[j]: float(wins[other[:, j], j].mean()) for j in range(peak.shape[1]) if other[:, j].any()}
    easiest = sorted(by_prompt, key=lambda c: -by_prompt[c])[:most]
    return {"during": round(float(wins[other].mean()), 5),
            "finished": round(float((np.where(other, done, -1) >= threshold)[other].mean()), 5),
            "drawings_winning_another_round": round(float(wins.any(axis=1).mean()), 4),
            "easiest_prompts": {c: round(by_prompt[c], 4) for c in easiest}}


def referee_row(own: dict, wrong: dict) -> dict:
    """One threshold of the referee table: how early and how often a drawing wins its own round,
    how often one wins another's, and their Youden's J judged live: the share of drawings that
    win their own round at some point minus the share of other rounds a drawing would win."""
    return {"median_share": own["median_share"], "never": own["never"], "wrong_wins": wrong,
            "live_j": round(1 - own["never"] - wrong["during"], 4)}


def machine(load_start: float, seconds: float) -> dict:
    """The CPU, its vector flags, the thread count and the load a figure was measured at."""
    info = machine_info(torch.device("cpu"))
    return {"cpu": info["cpu"], "flags": cpu_flags(), "cores": info["cores"], "torch": info["torch"], "threads": 1,
            "load_start": round(load_start, 1), "load_end": round(os.getloadavg()[0], 1), "seconds": round(seconds)}


def add_entry(path: str | os.PathLike, name: str, entry: dict, about: str) -> None:
    """Add (or replace) ``entry`` as ``models[name]`` in the JSON file at ``path``."""
    path = Path(path)
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc.setdefault("about", about)
    doc.setdefault("models", {})[name] = entry
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint, or a shipped model's name (pretrained, pretrained-54)")
    p.add_argument("--name", help="the model's key in the JSON (default: the checkpoint argument)")
    p.add_argument("--threshold", type=float, help="the game's threshold (default: the model's)")
    p.add_argument("--step", type=float, default=0.05, help="share of the ink between replays within a stroke")
    p.add_argument("--strokes", help="folder of <class>.ndjson (default: $QUICKSKETCH_STROKES, else data/strokes)")
    p.add_argument("--json", metavar="PATH", help="add the result to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    threshold = args.threshold if args.threshold is not None else model_threshold(ckpt)
    folder = Path(args.strokes) if args.strokes else strokes_dir()
    if not folder.is_dir():
        raise SystemExit(f"error: no stroke drawings at {folder}; set $QUICKSKETCH_STROKES or pass --strokes")
    start, load = time.perf_counter(), os.getloadavg()[0]
    referees = sorted({threshold, BASELINE, *REFEREES})
    points = how_early(live_predictor(ckpt), folder, {f"{t:g}": t for t in referees}, args.step)
    game, baseline = f"{threshold:g}", f"{BASELINE:g}"  # keys of points and pooled
    if not points:
        raise SystemExit(f"error: {folder} has no .ndjson file of the model's classes")
    keys = [k for k in next(iter(points.values())) if not k.startswith("others_")]
    pooled = {key: summarise([x for per in points.values() for x in per[key]]) for key in keys}
    overall, base = pooled[game], pooled[baseline]
    ends, base_ends = pooled[f"{game}_stroke_ends"], pooled[f"{baseline}_stroke_ends"]
    entry = {"checkpoint": args.checkpoint, "threshold": threshold, "drawings": overall["drawings"],
             "classes": len(points), "held_out_accuracy": ckpt.metrics.get("val_accuracy"),
             "recipe": (ckpt.train_config or {}).get("recipe"), "partial": (ckpt.train_config or {}).get("partial"),
             "overall": {"median_share": overall["median_share"], "never": overall["never"],
                         f"median_share_at_{BASELINE}": base["median_share"], f"never_at_{BASELINE}": base["never"]},
             "stroke_ends_only": {"median_share": ends["median_share"], "never": ends["never"],
                                  f"median_share_at_{BASELINE}": base_ends["median_share"],
                                  f"never_at_{BASELINE}": base_ends["never"]},
             "per_class": {name: summarise(per[game]) for name, per in points.items()},
             # the referee's trade-off: how early a drawing wins its own round at each threshold,
             # against how often it would win a round that prompted another class
             "referee": {f"{t:g}": referee_row(pooled[f"{t:g}"], wrong_wins(points, t, ckpt.classes))
                         for t in referees},
             "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
             "machine": machine(load, time.perf_counter() - start)}
    print(f"{args.checkpoint}: {overall['drawings']} drawings of {len(points)} classes from {folder}")
    print(f"threshold {threshold:g}: recognised at a median of {overall['median_share']:.0%} of the ink; "
          f"never {overall['never']:.1%}")
    print(f"threshold {BASELINE}: median {base['median_share']:.0%} of the ink; never {base['never']:.1%}")
    print(f"judged only at stroke ends: {ends['median_share']:.0%} at {threshold:g} (never {ends['never']:.1%}), "
          f"{base_ends['median_share']:.0%} at {BASELINE} (never {base_ends['never']:.1%})")
    print("referee: threshold | own round won at a median share (never) | another round won: during the "
          "drawing, finished, drawings winning one | live J")
    for t, row in entry["referee"].items():
        w = row["wrong_wins"]
        print(f"  {t:>5} | {row['median_share']:.0%} ({row['never']:.1%}) | {w['during']:.2%}, {w['finished']:.2%}, "
              f"{w['drawings_winning_another_round']:.0%} | {row['live_j']:.3f}")
    easiest = entry["referee"][game]["wrong_wins"]["easiest_prompts"]
    print(f"at {threshold:g}, the rounds other drawings win most often: "
          + ", ".join(f"{c} ({share:.0%} of them)" for c, share in easiest.items()))
    for name, row in sorted(entry["per_class"].items(), key=lambda kv: (kv[1]["median_share"] is None,
                                                                         kv[1]["median_share"] or 0)):
        share = "never" if row["median_share"] is None else f"{row['median_share']:.0%}"
        print(f"  {name:<16} {row['drawings']:>3} drawings  median {share:>5}  never {row['never']:.0%}")
    print(f"{entry['machine']['seconds']} s, 1 thread, load {load:.1f} -> {entry['machine']['load_end']}")
    if args.json:
        add_entry(args.json, args.name or args.checkpoint, entry, ABOUT)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
