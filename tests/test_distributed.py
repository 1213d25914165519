"""`quicksketch train` under torchrun and fit's DistributedDataParallel path, on CPU with gloo.

Two processes train on small data and must match one process's held-out accuracy within
noise, leaving exactly one loadable checkpoint (written by rank 0).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.device import init_distributed
from quicksketch_lib.training import TrainConfig, fit

from conftest import make_shapes

TINY = ModelConfig(num_classes=3, channels=(8, 16, 32), hidden=32)
# 2 ranks x 32 per rank is the same global batch (and number of steps) as 1 process x 64
CONFIG = TrainConfig(epochs=8, batch_size=32, num_threads=1, seed=0)
SINGLE = TrainConfig(epochs=8, batch_size=64, num_threads=1, seed=0)

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shapes_600(tmp_path):
    folder = tmp_path / "shapes600"
    folder.mkdir()
    for name, arr in make_shapes(200, seed=1).items():
        np.save(folder / f"{name}.npy", arr)
    return folder


def _ddp_worker(rank: int, world: int, port: int, data_dir: str, out: str) -> None:
    """One torchrun-like rank: env, process group (device.init_distributed), fit, clean up."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert init_distributed("cpu") == (rank, world)
    try:
        result = fit(SketchCNN(TINY), load_folder(data_dir), CONFIG, out=out, progress=False)
        with open(f"{out}.rank{rank}.json", "w") as f:
            json.dump(result.history, f)
    finally:
        dist.destroy_process_group()


def test_two_processes_reach_one_process_accuracy_and_save_one_checkpoint(shapes_600, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    out = runs / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(shapes_600), str(out)), nprocs=2, join=True)
    histories = [json.loads((runs / f"ddp.pt.rank{r}.json").read_text()) for r in (0, 1)]
    for r in (0, 1):
        (runs / f"ddp.pt.rank{r}.json").unlink()
    assert sorted(p.name for p in runs.iterdir()) == ["ddp.history.json", "ddp.pt"]
    # held-out metrics are summed over both ranks: every rank reports the same numbers
    assert histories[0][-1]["val_accuracy"] == histories[1][-1]["val_accuracy"]

    torch.manual_seed(0)
    single = fit(SketchCNN(TINY), load_folder(shapes_600), SINGLE, progress=False)
    ddp_acc, one_acc = histories[0][-1]["val_accuracy"], single.val_accuracy
    print(f"held-out accuracy: 2 processes {ddp_acc:.3f}, 1 process {one_acc:.3f}")
    assert one_acc > 0.9 and abs(ddp_acc - one_acc) <= 0.07  # 60 held out: 4 drawings

    ckpt = load_checkpoint(out)
    assert ckpt.classes == ["box", "cross", "ring"] and ckpt.metrics["epochs"] == CONFIG.epochs
    # the recorded accuracy is the saved weights' own (rank 0's BatchNorm statistics)
    data = load_folder(shapes_600)
    val = ckpt.split["val_indices"].numpy()
    from quicksketch_lib.data import normalize_batch
    with torch.no_grad():
        logits = ckpt.build_model()(normalize_batch(torch.from_numpy(data.images[val])))
    acc = float((logits.argmax(1).numpy() == data.labels[val]).mean())
    assert abs(acc - ckpt.metrics["val_accuracy"]) <= 1 / len(val) + 1e-9


def test_torchrun_runs_the_train_command_on_two_processes(shapes_dir, tmp_path):
    """``torchrun -m quicksketch_lib train`` with the CLI's options: rank 0 alone prints and saves."""
    out = tmp_path / "models" / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "quicksketch_lib", "train", "--data", str(shapes_dir),
           "--epochs", "1", "--batch-size", "16", "--max-batches", "2", "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("held-out accuracy") == 1 and "2 processes, gloo" in proc.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["ddp.history.json", "ddp.pt"]
    assert load_checkpoint(out).classes == ["box", "cross", "ring"]


def test_torchrun_reports_bad_data_on_one_line(tmp_path):
    from quicksketch_lib.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), "--epochs", "1"]) == 3
