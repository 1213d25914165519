"""Data-parallel training under ``torchrun`` (PyTorch DistributedDataParallel).

Same options as ``quicksketch train``; one process per GPU (or several CPU
processes with gloo)::

    torchrun --nproc_per_node=4 -m quicksketch_lib.train --data data/quickdraw --epochs 20

Each process joins the group torchrun describes in its environment (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL when it
trains on a GPU (``cuda:LOCAL_RANK``), gloo on CPUs. ``fit`` then trains on this
rank's shard of the training split, averages gradients across ranks and sums the
held-out metrics over all of them; only rank 0 prints and writes the checkpoint
and history. ``--batch-size`` is per process: the global batch is
``WORLD_SIZE x batch size``. Without torchrun it runs as one process, like
``quicksketch train``.
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch
import torch.distributed as dist


def wants_cuda(device: str | None) -> bool:
    """Whether ``--device`` means a GPU here (``auto`` does when CUDA is available)."""
    if device in (None, "auto"):
        return torch.cuda.is_available()
    return device.startswith("cuda")


def init_distributed(device: str | None) -> tuple[int, int]:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPU); return (rank, world)."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if wants_cuda(device):
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def main(argv: list[str] | None = None) -> int:
    """``quicksketch train`` (its parser, ``cmd_train`` and exit codes) on every rank."""
    from .cli import build_parser
    from .cli import main as cli_main

    argv = ["train", *(sys.argv[1:] if argv is None else argv)]
    args = build_parser().parse_args(argv)
    rank, world = init_distributed(args.device)
    try:
        if rank == 0:
            if world > 1:
                print(f"DistributedDataParallel: {world} processes, {dist.get_backend()} backend, "
                      f"batch {args.batch_size or 256} per process", flush=True)
            return cli_main(argv)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            return cli_main([*argv, "--quiet"])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
