"""The GPU figures of the README: time to train, fast path vs fp32 accuracy, bench.

Run from the repository root on a machine with a CUDA GPU (or ``PYTHONPATH=. python ...``
where the package is not installed)::

    .venv/bin/python scripts/gpu_runs.py --data ../shared/data/quickdraw --out gpu_results

Three parts, each appending to ``OUT/gpu_results.json`` as it finishes (so a run
cut short keeps what it measured):

1. ``time_to_train`` -- the original recipe (20 epochs, batch 256, Adam, StepLR)
   with ``fit`` on every drawing in ``--data`` (104,700 in ``../shared/data``),
   wall-clock from loading the folder to the last checkpoint, for the default
   fast path (bf16, channels_last, the step replayed as a CUDA graph), without
   CUDA graphs, with ``torch.compile`` instead, and plain fp32 (NCHW, no autocast,
   TF32 off). Issue #7's target: under 30 s on one GPU.
2. ``accuracy`` -- the same 20-epoch runs on the ten classes, fast path vs strict
   fp32, with ``--seeds`` seeds: held-out accuracy and the difference.
3. ``bench`` -- ``quicksketch bench --quick --device cuda`` (original recipe as
   written vs the fast path, loading, inference, widget, memory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.data import load_folder
from quicksketch_lib.device import doctor_report
from quicksketch_lib.model import ModelConfig, build_model
from quicksketch_lib.recipes import recipe_config
from quicksketch_lib.training import fit

VARIANTS = {  # name -> TrainConfig overrides
    "default": {},  # bf16 autocast, channels_last, data on the GPU, CUDA-graph step
    "no-cuda-graphs": {"cuda_graphs": False},
    "compile": {"compile": True, "cuda_graphs": False},
    "fp32": {"precision": "fp32", "channels_last": False},  # and TF32 off
}


@contextlib.contextmanager
def strict_fp32(enabled: bool):
    """Turn TF32 off (PyTorch leaves it on for cuDNN convolutions by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if enabled:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def train_once(data_dir: Path, classes, overrides: dict, seed: int, epochs: int, workdir: Path) -> dict:
    """One 20-epoch original-recipe run; wall time from load_folder to the last checkpoint."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    data = load_folder(data_dir, classes=classes)
    config = replace(recipe_config("original"), epochs=epochs, seed=seed, **overrides)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(), data.classes)
    with strict_fp32(overrides.get("precision") == "fp32"):
        result = fit(model, data, config, out=workdir / f"run{seed}.pt", progress=False)
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    hist = result.history
    return {"drawings": len(data), "classes": len(data.classes), "epochs": epochs, "seed": seed,
            "wall_s": wall, "epoch_s": [round(h["seconds"], 3) for h in hist],
            "train_s": sum(h["seconds"] for h in hist),
            "images_per_s_median": sorted(h["images_per_s"] for h in hist)[len(hist) // 2],
            "val_accuracy": result.val_accuracy,
            "precision": result.checkpoint.train_config["precision"],
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data folder (one <class>.npy per class)")
    p.add_argument("--out", required=True, help="folder for gpu_results.json and bench.json")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3, help="seeds per precision in the accuracy part")
    p.add_argument("--parts", nargs="+", default=["time", "accuracy", "bench"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="time-to-train variants (default: all)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU here", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"doctor": doctor_report(), "gpu": torch.cuda.get_device_name(),
               "torch": torch.__version__}

    def save():
        (out / "gpu_results.json").write_text(json.dumps(results, indent=2, default=str))

    save()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "time" in args.parts:
            results["time_to_train"] = {}
            for name in args.variants:
                overrides = VARIANTS[name]
                run = train_once(Path(args.data), None, overrides, 0, args.epochs, tmp)
                results["time_to_train"][name] = run
                print(f"time to train  {name:<24} {run['wall_s']:6.1f} s wall, {run['train_s']:6.1f} s "
                      f"in epochs, {run['images_per_s_median']:,.0f} img/s, "
                      f"val {run['val_accuracy']:.2%}", flush=True)
                save()
        if "accuracy" in args.parts:
            results["accuracy"] = {"fast": [], "fp32": []}
            for seed in range(args.seeds):
                for name, overrides in (("fast", {}), ("fp32", VARIANTS["fp32"])):
                    run = train_once(Path(args.data), THE_TEN, overrides, seed, args.epochs, tmp)
                    results["accuracy"][name].append(run)
                    print(f"accuracy  seed {seed}  {name:<5} val {run['val_accuracy']:.2%}  "
                          f"({run['wall_s']:.1f} s)", flush=True)
                    save()
            acc = {k: [r["val_accuracy"] for r in v] for k, v in results["accuracy"].items()}
            mean = {k: sum(v) / len(v) for k, v in acc.items()}
            results["accuracy"]["mean_difference_points"] = 100 * (mean["fast"] - mean["fp32"])
            print(f"accuracy  mean fast {mean['fast']:.2%}  fp32 {mean['fp32']:.2%}  "
                  f"difference {results['accuracy']['mean_difference_points']:+.2f} points", flush=True)
            save()
    if "bench" in args.parts:
        cmd = [sys.executable, "-m", "quicksketch_lib", "bench", "--quick", "--device", "cuda",
               "--data", args.data, "--json", str(out / "bench.json")]
        results["bench_rc"] = subprocess.call(cmd)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
