"""One place for device choice, seeding, precision, the torchrun process group and the
``doctor`` report."""

from __future__ import annotations

import os
import platform
import random
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.distributed as dist


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else Apple MPS, else CPU. Or an explicit name."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(name: str) -> str:
    """``name`` when this machine has that device (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
    ``mps``); else :class:`ValueError` saying what is there."""
    if name == "auto":
        return name
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{name}: no CUDA GPU on this machine (or a CPU-only torch); "
                             "use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"{name}: this machine has {count} CUDA GPU(s), numbered 0..{count - 1}")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{name}: Apple MPS is not available here; use --device cpu or auto")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    return name


def rank_device(preference: str = "auto") -> torch.device:
    """:func:`pick_device`; under torchrun on GPUs, this process's GPU (``cuda:LOCAL_RANK``)."""
    device = pick_device(preference)
    rank, world = dist_info()
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device


# --------------------------------------------------------------------------- torchrun
def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wants_cuda(device: str | None) -> bool:
    """Whether ``--device`` means a GPU here (``auto`` does when CUDA is available)."""
    if device in (None, "auto"):
        return torch.cuda.is_available()
    return device.startswith("cuda")


def init_distributed(device: str | None) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (``RANK``,
    ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL when ``device``
    is a GPU (``cuda:LOCAL_RANK``), gloo on CPUs. Returns (rank, world); (0, 1) without
    torchrun (no ``WORLD_SIZE``)."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if wants_cuda(device):
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


# --------------------------------------------------------------------------- seeds and precision
def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: torch.device | str = "cpu") -> str:
    """What a timing ran on, to print beside it: the GPU's name, or the CPU's model, whether
    it has AVX-512 and the thread count torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    try:
        with open("/proc/cpuinfo") as f:
            vector = "AVX-512" if "avx512f" in f.read() else "no AVX-512"
    except OSError:
        vector = "vector extensions unknown"
    threads = torch.get_num_threads()
    return f"CPU {cpu_name()} ({vector}), {threads} thread{'' if threads == 1 else 's'}"


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bfloat16 instructions (AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32).

    ``auto`` picks bf16 on GPUs that support it (fp16 on older ones) and on CPUs
    with native bf16; fp32 elsewhere.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None, cache: bool = True):
    """An autocast context for ``dtype``, or a no-op for fp32. ``cache=False`` turns off
    the cache of cast weights (required while a CUDA graph is captured)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def configure_threads(num_threads: int = 0) -> int:
    """Set torch's intra-op threads (0 = keep torch's choice); return the count in use."""
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()


@contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` intra-op threads, then restore the previous count.

    A single drawing is too small to split across threads (README "Speed" has the
    measurement)."""
    previous = torch.get_num_threads()
    if n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def doctor_report() -> dict:
    """What this machine offers QuickSketch, and what the trainer will pick."""
    device = pick_device()
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "gpus": [],
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_has_fast_bf16(),
        "trainer_device": str(device),
    }
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        report["gpus"].append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                               "capability": f"{props.major}.{props.minor}",
                               "bf16": torch.cuda.is_bf16_supported()})
    dtype = resolve_precision("auto", device)
    report["trainer_precision"] = "fp32" if dtype is None else str(dtype).replace("torch.", "")
    return report


def format_report(report: dict) -> str:
    lines = [
        f"Python        {report['python']}",
        f"torch         {report['torch']} (CUDA build: {report['cuda_version'] or 'no, CPU-only'})",
        f"numpy         {report['numpy']}",
        f"CUDA          {'available' if report['cuda_available'] else 'not available'}",
    ]
    lines += [f"  GPU {i}       {g['name']}, {g['memory_gib']} GiB, compute {g['capability']}, "
              f"bf16 {'yes' if g['bf16'] else 'no'}" for i, g in enumerate(report["gpus"])]
    lines += [
        f"Apple MPS     {'available' if report['mps_available'] else 'not available'}",
        f"CPU           {report['cpu']}, {report['cpu_count']} cores, torch uses {report['torch_threads']} threads",
        f"CPU bf16      {'yes (AVX-512 BF16/AMX): fast CPU path on' if report['cpu_bf16'] else 'no: CPU trains in fp32'}",
        f"Trainer picks {report['trainer_device']} with {report['trainer_precision']} autocast",
    ]
    if not report["cuda_available"] and "+cpu" in report["torch"]:
        lines.append("Hint          this is a CPU-only torch; see README 'GPU install' for a CUDA build")
    return "\n".join(lines)
