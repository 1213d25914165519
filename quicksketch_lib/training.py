"""Training: ``TrainConfig`` (the original recipe's defaults) and ``fit``.

Four lines train a model::

    data = load_folder("data/quickdraw")
    model = SketchCNN(ModelConfig(num_classes=len(data.classes)))
    result = fit(model, data, TrainConfig(epochs=20), out="models/sketchcnn.pt")

``fit`` uses the fast batch path (uint8 slices, no per-sample Python), bf16
autocast and channels_last where the hardware has them (switch off with
``precision="fp32"``, ``channels_last=False``) and, on a GPU, replays each step as one
CUDA graph (:class:`TrainStep`; ``cuda_graphs=False``), holds out a seeded, stratified
10% of every class, reports held-out accuracy every epoch, and saves a
self-describing checkpoint after every epoch, so ``resume=True`` continues an
interrupted run and reaches the same result as an uninterrupted one.
Under ``torchrun`` it trains data-parallel (see ``quicksketch_lib.train``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import NORM_MEAN, NORM_STD, BatchLoader, SketchData, shard_indices, stratified_split
from .device import autocast, configure_threads, pick_device, resolve_precision, set_seed
from .errors import CheckpointError, TrainingError
from .files import atomic_write, check_output_file, exclusive_lock
from .model import SketchCNN


@dataclass
class TrainConfig:
    """How to train. Defaults are the original QuickSketch recipe."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"  # "adam" (original) or "adamw"
    schedule: str = "step"  # "step" (StepLR, original), "cosine" or "onecycle"
    step_size: int = 10  # StepLR: halve every 10 epochs ...
    gamma: float = 0.5  # ... by this factor
    warmup_epochs: float = 0.0  # linear warm-up before cosine
    label_smoothing: float = 0.0
    augment: float = 0.0  # strength of drawing-preserving augmentation, 0 = off
    ema_decay: float = 0.0  # EMA of weights, 0 = off
    tta_flip: bool = False  # held-out metrics average each drawing and its mirror image
    val_fraction: float = 0.1
    seed: int = 0
    recipe: str = "original"
    # how to run (do not change the result beyond float noise)
    device: str = "auto"
    precision: str = "auto"  # "auto" (bf16 where fast), "fp32", "bf16", "fp16"
    channels_last: bool = True
    compile: bool = False
    cuda_graphs: bool = True  # on a GPU: replay each training step as one CUDA graph
    num_threads: int = 0  # 0 = torch's default
    max_batches: int | None = None  # cap batches per epoch (quick CI/demo runs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# TrainConfig fields that change what a run learns: a resumed run must keep them (``epochs``
# too when the schedule is planned over the whole run); the others only say how it runs.
RESULT_FIELDS = ("batch_size", "lr", "weight_decay", "optimizer", "schedule", "step_size", "gamma",
                 "warmup_epochs", "label_smoothing", "augment", "ema_decay", "tta_flip",
                 "val_fraction", "seed", "recipe", "max_batches")


@dataclass
class FitResult:
    model: SketchCNN
    history: list[dict]
    checkpoint: Checkpoint
    path: Path | None = None
    epochs_trained: int = 0  # in this call (0: a resumed run had already reached its epochs)

    @property
    def val_accuracy(self) -> float:
        return self.history[-1]["val_accuracy"] if self.history else float("nan")


# --------------------------------------------------------------------------- pieces
def build_optimizer(model: nn.Module, config: TrainConfig, graphed: bool = False) -> torch.optim.Optimizer:
    """Adam or AdamW from ``config``. ``graphed``: ready for CUDA-graph capture (the
    learning rate a device tensor the schedulers update in place, ``capturable=True``)."""
    if config.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {config.optimizer!r}")
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    lr, extra = config.lr, {}
    if graphed:
        lr = torch.tensor(config.lr, device=next(model.parameters()).device)
        extra = {"capturable": True}
    return cls(model.parameters(), lr=lr, weight_decay=config.weight_decay, **extra)


def uses_cuda_graphs(config: TrainConfig, device: torch.device, dtype: torch.dtype | None,
                     world: int = 1) -> bool:
    """Whether ``fit`` captures the training step as a CUDA graph: on a GPU with
    ``cuda_graphs`` on, except with ``torch.compile``, DistributedDataParallel or fp16
    (its loss scaler skips steps, which a replayed graph cannot)."""
    return (config.cuda_graphs and device.type == "cuda" and world == 1 and not config.compile
            and dtype != torch.float16)


def build_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    """StepLR is stepped once per epoch (as in the original); the others per batch."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    if config.schedule == "cosine":
        warm = int(config.warmup_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise ValueError(f"schedule must be 'step', 'cosine' or 'onecycle', got {config.schedule!r}")


def lr_schedule(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The learning rate at every step of a run (for plots), without training."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    sched = build_scheduler(opt, config, steps_per_epoch)
    lrs = []
    for _ in range(config.epochs):
        for _ in range(steps_per_epoch):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if config.schedule != "step":
                sched.step()
        if config.schedule == "step":
            sched.step()
    return lrs


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def flip_averaged_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation: the mean of the probabilities of each drawing and its mirror."""
    return (model(x).float().softmax(1) + model(x.flip(-1)).float().softmax(1)) / 2


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: BatchLoader, dtype: torch.dtype | None,
                    flip: bool = False) -> dict:
    """Loss, accuracy and total over a loader (all ranks summed); ``flip`` averages the
    probabilities of each drawing and its mirror image (test-time augmentation)."""
    model.eval()
    device = loader.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader:
        with autocast(device, dtype):
            if flip:  # log-probabilities: cross-entropy is their NLL
                logits = flip_averaged_proba(model, x).clamp_min(1e-12).log()
            else:
                logits = model(x)
        sums[0] += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += len(y)
    if dist_info()[1] > 1:
        dist.all_reduce(sums)
    loss, accuracy, total = _means(sums)
    return {"loss": loss, "accuracy": accuracy, "total": total}


def _means(sums: torch.Tensor) -> tuple[float, float, int]:
    """(mean loss, accuracy, images) from running sums (loss x images, correct, images)."""
    loss_sum, correct, total = sums.tolist()
    return loss_sum / max(total, 1), correct / max(total, 1), int(total)


# --------------------------------------------------------------------------- fit
def fit(model: SketchCNN, data: SketchData, config: TrainConfig | None = None,
        out: str | os.PathLike | None = None, *, resume: bool = False, progress: bool = True,
        callbacks: list[Callable[[dict], None]] | None = None) -> FitResult:
    """Train ``model`` on ``data`` with ``config``; save to ``out`` after every epoch.

    Returns the trained model (EMA weights when ``ema_decay`` > 0), the per-epoch
    history and the final checkpoint. ``callbacks`` get each epoch's record.
    """
    config = config or TrainConfig()
    rank, world = dist_info()
    out = Path(out) if out else None
    if out is not None and rank == 0:
        check_output_file(out)  # a read-only or wrong --out fails now, not after an epoch
        with exclusive_lock(out):  # one training per output file
            return _fit(model, data, config, out, resume=resume, progress=progress, callbacks=callbacks)
    return _fit(model, data, config, out, resume=resume, progress=progress, callbacks=callbacks)


def _fit(model: SketchCNN, data: SketchData, config: TrainConfig, out: Path | None, *, resume: bool,
         progress: bool, callbacks) -> FitResult:
    rank, world = dist_info()
    set_seed(config.seed)
    configure_threads(config.num_threads)
    device = pick_device(config.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    dtype = resolve_precision(config.precision, device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    state = _load_resume_state(out, data, config) if resume else None
    if state is not None:
        val_idx = state.split["val_indices"].numpy()
        train_idx = np.setdiff1d(np.arange(len(data)), val_idx)
    else:
        train_idx, val_idx = stratified_split(data.labels, config.val_fraction, config.seed)

    shard = shard_indices(train_idx, data.labels, rank, world) if world > 1 else train_idx
    train_loader = BatchLoader(data.images[shard], data.labels[shard], config.batch_size,
                               shuffle=True, seed=config.seed, device=device,
                               channels_last=config.channels_last, max_batches=config.max_batches)
    val_shard = val_idx[rank::world]
    val_loader = BatchLoader(data.images[val_shard], data.labels[val_shard], 1024, device=device,
                             channels_last=config.channels_last,
                             max_batches=None if config.max_batches is None else max(1, config.max_batches // 2))

    model.to(device, memory_format=memory_format)
    graphed = uses_cuda_graphs(config, device, dtype, world)
    optimizer = build_optimizer(model, config, graphed=graphed)
    scheduler = build_scheduler(optimizer, config, len(train_loader))
    ema = _build_ema(model, config.ema_decay)
    history: list[dict] = []
    start_epoch = 0
    if state is not None:
        start_epoch, history = _restore(state, model, optimizer, scheduler, ema, device)

    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    augment = _augmenter(config, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    step = TrainStep(train_model, optimizer, criterion, device, dtype, scaler, cuda_graph=graphed)

    if len(train_loader) == 0:
        raise TrainingError(f"no training batches: {len(shard)} training drawings, max_batches="
                            f"{config.max_batches}; use more drawings or a positive --max-batches")
    ckpt = state
    for epoch in range(start_epoch, config.epochs):
        train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        train_stats = _train_one_epoch(step, train_loader, scheduler, ema, augment, config, epoch,
                                       progress=progress and rank == 0)
        if config.schedule == "step":
            scheduler.step()
        seconds = time.perf_counter() - t0
        eval_model = ema.module if ema is not None else model
        if world > 1:  # BatchNorm statistics differ per rank: use rank 0's, which it saves
            for buffer in eval_model.buffers():
                dist.broadcast(buffer, 0)
        val = evaluate_loader(eval_model, val_loader, dtype, flip=config.tta_flip)
        _check_finite(train_stats["train_loss"], val["loss"], epoch + 1, config, out)
        record = {"epoch": epoch + 1, **train_stats, "val_loss": val["loss"],
                  "val_accuracy": val["accuracy"], "seconds": seconds,
                  "images_per_s": train_stats["images"] * world / max(seconds, 1e-9)}
        history.append(record)
        ckpt = _make_checkpoint(eval_model, model, data, config, history, val_idx,
                                optimizer, scheduler, ema, epoch + 1)
        if rank == 0:
            if progress:
                print(_format_record(record, config.epochs), flush=True)
            if out is not None:
                save_checkpoint(ckpt, out)
                write_history(history, out)
            for cb in callbacks or []:
                cb(record)
        if world > 1:
            dist.barrier()
    if ckpt is None:
        raise TrainingError(f"epochs must be at least 1, got {config.epochs}")
    ckpt.path = out
    final = ema.module if ema is not None else model
    return FitResult(final.eval(), history, ckpt, out, epochs_trained=max(0, config.epochs - start_epoch))


def _check_finite(train_loss: float, val_loss: float, epoch: int, config: TrainConfig, out) -> None:
    """Stop a diverged run before it saves: a NaN/infinite loss makes a useless model."""
    if math.isfinite(train_loss) and math.isfinite(val_loss):
        return
    kept = f"; {out} keeps the last good epoch" if out is not None and Path(out).exists() else \
        "; nothing was saved"
    raise TrainingError(f"training diverged in epoch {epoch}: the loss became {train_loss:g} (train) / "
                        f"{val_loss:g} (held-out) with learning rate {config.lr:g}{kept}; "
                        "try a lower --lr")


class TrainStep:
    """One optimisation step per call, with the epoch's running loss/accuracy sums kept on
    the device (``sums``: loss x images, correct, images; no per-step synchronisation).

    With ``cuda_graph=True`` the first ``warmup`` steps run eagerly on a side stream (CUDA
    graphs need the lazy set-up done before capture), then the whole step -- forward,
    loss, backward, optimizer step and sums -- is captured once as a CUDA graph and each
    later batch of the same size is copied into the graph's input and replayed. At batch
    256 this small model is limited by Python launching ~250 kernels per step, not by
    the GPU, so replaying them as one graph is the GPU fast path. Batches of another
    size (an epoch's last) run eagerly on the same weights and optimizer state. Every
    step, warm-up and capture included, is a real training step on real batches.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                 device: torch.device, dtype: torch.dtype | None, scaler=None,
                 cuda_graph: bool = False, warmup: int = 3):
        self.model, self.optimizer, self.criterion = model, optimizer, criterion
        self.device, self.dtype, self.scaler = device, dtype, scaler
        self.cuda_graph, self.warmup = cuda_graph, warmup
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0

    def reset(self) -> None:
        """Zero the running sums (start of an epoch)."""
        self.sums.zero_()

    def stats(self) -> dict:
        loss, accuracy, images = _means(self.sums)
        return {"train_loss": loss, "train_accuracy": accuracy, "images": images}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.cuda_graph:
            self.optimizer.zero_grad(set_to_none=True)
            self._step(x, y)
            return
        if self.graph is not None and x.shape == self._x.shape:
            self._sync_lr()
            self._x.copy_(x)
            self._y.copy_(y)
            self.graph.replay()
        elif self.graph is None and self.eager_steps >= self.warmup:
            self._capture(x, y)
            self.graph.replay()  # capturing records the step; replaying runs it
        elif self.graph is None:  # warm-up, on a side stream as capture requires
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.optimizer.zero_grad(set_to_none=True)
                self._step(x, y)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.eager_steps += 1
        else:  # another batch size: eager, into the graph's own gradient tensors
            self.optimizer.zero_grad(set_to_none=False)
            self._step(x, y)

    def _sync_lr(self) -> None:
        """Put each group's learning rate into the tensor the graph reads. Schedulers fill
        a tensor lr in place in recent torch; older ones assign a new value instead."""
        for group, lr in zip(self.optimizer.param_groups, self._lrs):
            if group["lr"] is not lr:
                lr.fill_(float(group["lr"]))
                group["lr"] = lr

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._lrs = [torch.as_tensor(g["lr"], dtype=torch.float32, device=self.device)
                     if not isinstance(g["lr"], torch.Tensor) else g["lr"]
                     for g in self.optimizer.param_groups]
        for group, lr in zip(self.optimizer.param_groups, self._lrs):
            group["lr"] = lr  # a float lr would be baked into the graph
        self._x, self._y = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates grads in the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step(self._x, self._y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # autocast's weight-cast cache must be off while a graph is captured
        with autocast(self.device, self.dtype, cache=not self.cuda_graph):
            logits = self.model(x)
            loss = self.criterion(logits.float(), y)
        if self.scaler is not None:  # fp16 autocast: scale the loss so small gradients survive
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        with torch.no_grad():  # in-place adds: no per-step synchronisation
            self.sums[0] += loss.detach().double() * y.shape[0]
            self.sums[1] += (logits.argmax(1) == y).sum()
            self.sums[2] += y.shape[0]


def _train_one_epoch(step: TrainStep, loader, scheduler, ema, augment, config, epoch,
                     progress) -> dict:
    step.model.train()
    step.reset()
    bar = _progress(loader, f"epoch {epoch + 1}/{config.epochs}", progress)
    for i, (x, y) in enumerate(bar):
        if augment is not None:
            x = augment(x, epoch * 100_003 + i)
        step(x, y)
        if config.schedule != "step":
            scheduler.step()
        if ema is not None:
            model = step.model
            ema.update_parameters(model.module if hasattr(model, "module") else model)
        if bar is not loader and i % 20 == 0:
            bar.set_postfix(loss=f"{step.stats()['train_loss']:.3f}")
    return {**step.stats(), "lr": float(step.optimizer.param_groups[0]["lr"])}


def _augmenter(config: TrainConfig, device: torch.device):
    if config.augment <= 0:
        return None
    from .augment import augment_batch

    def apply(x: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator(device=x.device).manual_seed(config.seed * 7_919 + seed)
        return augment_batch(x, config.augment, g)
    return apply


def _build_ema(model: nn.Module, decay: float):
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _progress(loader, desc: str, enabled: bool):
    """A progress bar in notebooks and terminals; none in logs (stderr not a terminal)."""
    in_notebook = "ipykernel" in sys.modules
    if not enabled or not (in_notebook or sys.stderr.isatty()):
        return loader
    from tqdm.auto import tqdm
    return tqdm(loader, desc=desc, leave=False, unit="batch", mininterval=0.5)


def _format_record(r: dict, epochs: int) -> str:
    return (f"epoch {r['epoch']:>2}/{epochs}  train loss {r['train_loss']:.4f}  "
            f"train acc {r['train_accuracy']:.2%}  val loss {r['val_loss']:.4f}  "
            f"val acc {r['val_accuracy']:.2%}  lr {r['lr']:.2e}  {r['images_per_s']:,.0f} img/s")


# --------------------------------------------------------------------------- checkpoints
def _make_checkpoint(eval_model, model, data: SketchData, config: TrainConfig, history, val_idx,
                     optimizer, scheduler, ema, epochs_done: int) -> Checkpoint:
    train_state = {
        "epoch": epochs_done,
        "optimizer": portable_lr_state(optimizer.state_dict()),
        "scheduler": portable_lr_state(scheduler.state_dict()),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if ema is not None:  # the checkpoint's weights are the EMA's; keep the raw ones too
        train_state["model_state"] = _cpu_state(model)
        train_state["ema_state"] = _cpu_state(ema)
    last = history[-1]
    return Checkpoint(
        model_state=_cpu_state(eval_model),
        model_config=model.config,
        classes=list(data.classes),
        normalization={"mean": NORM_MEAN, "std": NORM_STD,
                       "input": "uint8 (N, 784) or (N, 28, 28), 0 = background, 255 = ink"},
        train_config=config.to_dict(),
        metrics={"val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
                 "train_accuracy": last["train_accuracy"], "epochs": epochs_done,
                 "train_seconds": sum(h["seconds"] for h in history)},
        history=list(history),
        data={**data.fingerprint(), "root": str(Path(data.root).resolve()) if data.root else "",
              "synthetic": data.synthetic},
        split={"val_indices": torch.as_tensor(val_idx, dtype=torch.int64),
               "seed": config.seed, "val_fraction": config.val_fraction},
        train_state=train_state,
    )


def portable_lr_state(state: dict) -> dict:
    """An optimizer's or scheduler's ``state_dict`` with learning rates as plain floats.

    The CUDA-graph path keeps the learning rate in a device tensor; saved as floats,
    a checkpoint resumes on any device, with or without graphs. Only ``param_groups``
    (optimizer) and the scheduler's own entries change; per-parameter state does not.
    """
    def plain(v):
        if isinstance(v, torch.Tensor) and v.ndim == 0:
            return v.item()
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    if "param_groups" in state:  # an optimizer's
        groups = [{k: (plain(v) if k != "params" else v) for k, v in g.items()}
                  for g in state["param_groups"]]
        return {**state, "param_groups": groups}
    return {k: plain(v) for k, v in state.items()}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)``, keeping how *this* run steps: whether it is
    ``capturable`` (the CUDA-graph path) and whether its lr is a device tensor. So a
    checkpoint from a GPU run resumes on a CPU, and the other way round."""
    own = [(g.get("capturable", False), g["lr"]) for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, (capturable, lr) in zip(optimizer.param_groups, own):
        group["capturable"] = capturable
        if isinstance(lr, torch.Tensor):
            lr.fill_(float(group["lr"]))
            group["lr"] = lr
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if torch.is_tensor(step):  # capturable steps count on the device, others on the CPU
                optimizer.state[param]["step"] = step.to(param.device if capturable else "cpu",
                                                         torch.float32)


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _load_resume_state(out: Path | None, data: SketchData, config: TrainConfig) -> Checkpoint | None:
    if out is None:
        raise CheckpointError("resume needs the checkpoint path to continue (--out)")
    if not out.exists():
        return None  # nothing to resume: start fresh
    ckpt = load_checkpoint(out)
    ckpt.check_classes(data.classes, str(data.root))
    if ckpt.train_state is None:
        raise CheckpointError(f"{out}: has no training state to resume from")
    if ckpt.data.get("counts") != data.counts or \
            ckpt.data.get("sha256", data.digests) != data.digests:
        raise CheckpointError(f"{out}: was trained on different drawings (per-class "
                              f"{'counts' if ckpt.data.get('counts') != data.counts else 'fingerprints'} "
                              "differ); resume with the same --data and --per-class")
    check_resume_config(ckpt.train_config, config, out)
    return ckpt


def check_resume_config(stored: dict, config: TrainConfig, out) -> None:
    """Refuse to resume with settings that change what the run learns (:data:`RESULT_FIELDS`;
    ``epochs`` too under a schedule planned over the whole run): the checkpoint would record
    values it was not trained with."""
    fields_ = RESULT_FIELDS + (("epochs",) if config.schedule != "step" else ())
    differ = [f"{k} {stored[k]!r} -> {getattr(config, k)!r}" for k in fields_
              if k in stored and stored[k] != getattr(config, k)]
    if differ:
        raise TrainingError(f"{out}: cannot resume with other settings ({'; '.join(differ)}); "
                            "resume with the run's own settings (leave them out) or train afresh "
                            "with another --out")


def resume_settings(out: str | os.PathLike) -> dict:
    """The :data:`RESULT_FIELDS` (and ``epochs``) of the run saved at ``out`` ({} when there is
    none): what ``quicksketch train --resume`` uses for options not given."""
    out = Path(out)
    if not out.is_file():
        return {}
    stored = load_checkpoint(out).train_config
    return {k: stored[k] for k in RESULT_FIELDS + ("epochs",) if k in stored}


def _restore(ckpt: Checkpoint, model, optimizer, scheduler, ema, device) -> tuple[int, list]:
    ts = ckpt.train_state
    model.load_state_dict(ts.get("model_state", ckpt.model_state))
    load_optimizer_state(optimizer, ts["optimizer"])
    scheduler.load_state_dict(ts["scheduler"])
    if ema is not None and "ema_state" in ts:
        ema.load_state_dict(ts["ema_state"])
    torch.set_rng_state(ts["torch_rng"])
    if ts.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ts["cuda_rng"])
    return int(ts["epoch"]), list(ckpt.history)


def history_path(checkpoint_path: str | os.PathLike) -> Path:
    p = Path(checkpoint_path)
    return p.with_name(p.stem + ".history.json")


def write_history(history: list[dict], checkpoint_path: str | os.PathLike) -> Path:
    """Save the per-epoch history as JSON next to the weights (atomically)."""
    path = history_path(checkpoint_path)
    with atomic_write(path, "w") as f:
        json.dump(history, f, indent=1)
    return path
