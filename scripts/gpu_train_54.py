"""Train ``pretrained-54`` candidates side by side on one CUDA GPU (the game issue's model).

Run from the repository root on a machine with a CUDA GPU (``PYTHONPATH=.`` where the
package is not installed)::

    python scripts/gpu_train_54.py --data ../shared/data/quickdraw --out gpu_54

Each variant is one ``quicksketch train`` run (``python -m quicksketch_lib train``), all
started at once: the model is small, so one run leaves most of an H100/H200 idle and several
share it well. Every run is the same documented command a user types; only ``--recipe``,
``--epochs``, ``--seed`` and ``--set`` differ. The others measure what epochs, the seed, partial
drawings and label smoothing are worth. How ``SHIPPED`` was chosen, so that it is not a pick of
the best held-out score: ``game40`` was named before the first runs; its seed 1 ended at
91.96 %, under the 92 % target, so the rule became the fewest epochs at which both seeds reach
92 %: 60 (92.40 % and 92.37 %). 80 epochs scored 92.63 % and 92.27 %: no better over two seeds.
Every figure: ``notebooks/runs/pretrained54_runs.json``.

Writes into ``--out``: each finished run's checkpoint without its resume state, weights in
float16 (``NAME.pt``, ~4.6 MB; ``scripts/make_pretrained.py`` takes it as it is) and
``gpu_train_54.json`` (the GPU, torch, every variant's command, wall time and per-epoch
held-out accuracy). With ``--evaluate`` each returned checkpoint is then evaluated as
``quicksketch evaluate NAME.pt --data DATA`` does (top-1, top-3, ECE and the weakest recalls on
the recorded split), and the JSON is ``notebooks/runs/pretrained54_runs.json`` as committed::

    python scripts/gpu_train_54.py --data ../shared/data/quickdraw --out gpu_54 --evaluate
    cp gpu_54/gpu_train_54.json notebooks/runs/pretrained54_runs.json

What several of these checkpoints say together about the top-3 target:
``scripts/top3_ceiling.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from quicksketch_lib.checkpoint import load_checkpoint, save_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.evaluation import evaluate
from quicksketch_lib.files import shown_path

from make_pretrained import drop_resume_state_and_halve  # noqa: E402  (scripts/ is on sys.path when run as a script)

# name -> (recipe, epochs, seed, --set KEY=VALUE...). Longer than the CPU's 15 epochs: that run's
# training accuracy (87.6 % on augmented drawings) was still below its held-out one: it underfit.
VARIANTS = {
    "game40": ("game", 40, 0),
    "game60": ("game", 60, 0),
    "game40_seed1": ("game", 40, 1),
    "quicksketch40": ("quicksketch", 40, 0),  # no partial drawings: what `partial` costs finished ones
    "game60_seed1": ("game", 60, 1),
    "game80": ("game", 80, 0),
    "game80_seed1": ("game", 80, 1),
    "quicksketch60": ("quicksketch", 60, 0),
    # label smoothing spreads probability evenly over the wrong classes: does it cost top-3?
    "game60_ls0": ("game", 60, 0, "label_smoothing=0"),
    "game60_ls0_seed1": ("game", 60, 1, "label_smoothing=0"),
    "game60_ls005": ("game", 60, 0, "label_smoothing=0.05"),
}
SHIPPED = "game60"  # see the module docstring


def command(data: str, name: str, work: Path) -> list[str]:
    recipe, epochs, seed, *sets = VARIANTS[name]
    return [sys.executable, "-m", "quicksketch_lib", "train", "--data", data, "--recipe", recipe,
            "--epochs", str(epochs), "--seed", str(seed), "--threads", "2", "--quiet",
            *[a for kv in sets for a in ("--set", kv)], "--out", str(work / f"{name}.pt")]


def evaluated(path: Path, data, device: str) -> dict:
    """What ``quicksketch evaluate PATH --data DATA`` reports, as the runs file records it."""
    report = evaluate(load_checkpoint(path), data, device=device)
    weakest = sorted(zip(report.classes, report.recall), key=lambda cr: cr[1])[:4]
    return {"top1": round(report.accuracy, 5), "top3": round(report.top3_accuracy, 5),
            "ece": round(report.ece, 4), "weakest_recall": [[c, round(r, 4)] for c, r in weakest]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the folder of the 54 class files")
    p.add_argument("--out", required=True, help="folder for the checkpoints and gpu_train_54.json")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants only")
    p.add_argument("--timeout", type=float, default=420, help="seconds before an unfinished run is stopped")
    p.add_argument("--evaluate", action="store_true",
                   help="evaluate each returned checkpoint on its recorded held-out split (top-1, top-3, ECE)")
    p.add_argument("--extra", default="", help="more train options for every run, one string (a dry run: \"--per-class 40 --max-batches 2 --epochs 2\")")
    args = p.parse_args()
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="gpu54_"))  # the runs' own checkpoints and logs
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(VARIANTS)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU (CPU)"
    print(f"{gpu}; torch {torch.__version__}; {len(names)} runs at once", flush=True)

    started, procs = {}, {}
    for name in names:
        cmd = command(args.data, name, work) + args.extra.split()
        log = open(work / f"{name}.log", "w")
        started[name] = time.perf_counter()
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()), cmd, log)
    results = {}
    for name, (proc, cmd, log) in procs.items():
        left = args.timeout - (time.perf_counter() - started[name])
        try:
            rc = proc.wait(timeout=max(left, 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        log.close()
        wall = time.perf_counter() - started[name]
        entry = {"command": " ".join(["quicksketch"] + cmd[3:]).replace(str(work), "models"), "rc": rc, "wall_s": round(wall, 1)}
        if rc != 0:  # why it failed
            entry["log_tail"] = (work / f"{name}.log").read_text()[-1500:]
        ckpt_path = work / f"{name}.pt"
        if ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path)
            entry["epochs_done"] = len(ckpt.history)
            entry["val_accuracy"] = [round(h["val_accuracy"], 5) for h in ckpt.history]
            entry["epochs_s"] = round(sum(h["seconds"] for h in ckpt.history), 1)  # training epochs only
            if rc == 0:  # only a finished run comes back as a model
                drop_resume_state_and_halve(ckpt)
                save_checkpoint(ckpt, out / f"{name}.pt")
        recipe, epochs, seed, *sets = VARIANTS[name]
        results[name] = {"recipe": recipe, "epochs": epochs, "seed": seed, "set": " ".join(sets) or None,
                         "gpu": gpu, "torch": torch.__version__, "runs_at_once": len(names), **entry}
        print(f"{name:15s} rc={rc} {wall:6.0f} s  epochs {entry.get('epochs_done', 0):2d}  "
              f"held-out {entry.get('val_accuracy', [float('nan')])[-1]:.4f}", flush=True)

    if args.evaluate:  # after every run has ended: the GPU is no longer shared
        data = load_folder(args.data)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        for name in results:
            if results[name]["rc"] == 0:
                results[name].update(evaluated(out / f"{name}.pt", data, device))
                print(f"{name:15s} top-1 {results[name]['top1']:.4f}  top-3 {results[name]['top3']:.4f}", flush=True)
    how = (f"evaluated with `quicksketch evaluate NAME.pt --data {shown_path(args.data)}` on the recorded "
           "held-out split (test-time flip as the recipe says)" if args.evaluate else "not evaluated (no --evaluate)")
    record = {"about": f"pretrained-54 candidates trained by scripts/gpu_train_54.py on {gpu} ({len(names)} runs "
                       f"sharing it at once, torch {torch.__version__}), {how}. val_accuracy: held-out accuracy "
                       f"after each epoch, as training recorded it. shipped: {SHIPPED} (see the script).",
              "shipped": SHIPPED, "runs": results}
    (out / "gpu_train_54.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
