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
held-out accuracy). Evaluate the returned checkpoints with ``quicksketch evaluate`` (top-1 and
top-3 on the recorded split).
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the folder of the 54 class files")
    p.add_argument("--out", required=True, help="folder for the checkpoints and gpu_train_54.json")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants only")
    p.add_argument("--timeout", type=float, default=420, help="seconds before an unfinished run is stopped")
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
        entry = {"command": " ".join(["quicksketch"] + cmd[3:]).replace(str(work), "models"), "rc": rc, "wall_s": round(wall, 1),
                 "log_tail": (work / f"{name}.log").read_text()[-1500:]}
        ckpt_path = work / f"{name}.pt"
        if ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path)
            entry["epochs_done"] = len(ckpt.history)
            entry["val_accuracy"] = [round(h["val_accuracy"], 5) for h in ckpt.history]
            entry["epoch_s"] = [round(h["seconds"], 2) for h in ckpt.history]
            if rc == 0:  # only a finished run comes back as a model
                drop_resume_state_and_halve(ckpt)
                save_checkpoint(ckpt, out / f"{name}.pt")
        results[name] = entry
        print(f"{name:15s} rc={rc} {wall:6.0f} s  epochs {entry.get('epochs_done', 0):2d}  "
              f"held-out {entry.get('val_accuracy', [float('nan')])[-1]:.4f}", flush=True)

    record = {"gpu": gpu, "torch": torch.__version__, "runs_at_once": len(names), "shipped": SHIPPED,
              "variants": {k: dict(zip(("recipe", "epochs", "seed", "set"), VARIANTS[k])) for k in names},
              "results": results}
    (out / "gpu_train_54.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
