"""Time the learner's CPU run (notebook 03 without a GPU) and print what a reader needs to judge it.

The run is ``recipe_config("learner")`` -- the quicksketch recipe for 3 epochs on 2,000 drawings
per class of the ten -- in float32 (the speed every CPU has; bf16 is off on purpose)::

    python scripts/learner_run.py --data ../shared/data/quickdraw --threads 2 --out /tmp/learner.pt
    python scripts/learner_run.py --data ../shared/data/quickdraw --threads 1 --max-batches 20   # a throughput probe

Prints, per epoch, the wall-clock time, the CPU time this process used, images per second of
wall-clock time and images per CPU-second, then the held-out accuracy, the CPU (model and
whether it has AVX-512 / AVX-512 BF16) and the load average before and after. On a machine
shared with other jobs the wall-clock time is inflated; images per CPU-second at one thread is
the figure least affected by the load (with more threads, threads waiting for each other also
burn CPU time).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.data import load_folder
from quicksketch_lib.device import set_seed
from quicksketch_lib.model import ModelConfig, build_model
from quicksketch_lib.recipes import recipe_config, recipe_per_class
from quicksketch_lib.training import fit


def cpu_description() -> str:
    """The CPU model and its vector extensions that matter for training speed."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if name in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, {' '.join(vector) or 'no AVX2'}"


class EpochClock:
    """A ``fit`` callback: wall-clock and CPU seconds of every epoch (evaluation included)."""

    def __init__(self):
        self.rows: list[dict] = []
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __call__(self, record: dict) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.rows.append({**record, "wall_s": wall - self._wall, "cpu_s": cpu - self._cpu})
        self._wall, self._cpu = wall, cpu
        r = self.rows[-1]
        print(f"epoch {r['epoch']}: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU, "
              f"{r['images'] / r['wall_s']:.0f} img/s wall, {r['images'] / r['cpu_s']:.0f} img per CPU-s, "
              f"held-out {r['val_accuracy']:.2%}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a folder with the ten classes' .npy files")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--max-batches", type=int, help="cap batches per epoch (a throughput probe)")
    p.add_argument("--epochs", type=int, help="epochs (default: the learner recipe's 3)")
    p.add_argument("--out", help="checkpoint path (its .history.json is written beside it)")
    args = p.parse_args()
    print("CPU:", cpu_description())
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    start = time.perf_counter()
    config = recipe_config("learner", precision="fp32", device="cpu", num_threads=args.threads,
                           max_batches=args.max_batches, epochs=args.epochs)
    data = load_folder(args.data, classes=THE_TEN, per_class=recipe_per_class("learner"))
    print(data.describe(), f"| {config.epochs} epochs, fp32, {args.threads} thread(s)")
    clock = EpochClock()
    set_seed(config.seed)  # the initial weights come from the seed too, as in `quicksketch train`
    model = build_model(ModelConfig(), data.classes)
    result = fit(model, data, config, out=args.out, progress=False, callbacks=[clock])
    total = time.perf_counter() - start
    cpu = sum(r["cpu_s"] for r in clock.rows)
    print(f"held-out accuracy {result.val_accuracy:.2%} | whole run (loading included) {total:.0f} s wall, "
          f"training + evaluation {cpu:.0f} s CPU")
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
