"""Training: ``TrainConfig`` (the original recipe's defaults) and ``fit``.

Four lines train a model::

    data = load_folder("data/quickdraw")
    model = build_model(ModelConfig(), data.classes)
    result = fit(model, data, TrainConfig(epochs=20), out="models/sketchcnn.pt")

``fit`` uses the fast batch path (uint8 slices, no per-sample Python), bf16
autocast and channels_last where the hardware has them (switch off with
``precision="fp32"``, ``channels_last=False``) and, on a GPU, replays each step as one
CUDA graph (:class:`TrainStep`; ``cuda_graphs=False``), holds out a seeded, stratified
10% of every class, reports held-out accuracy every epoch, and saves a
self-describing checkpoint after every epoch, so ``resume=True`` continues an
interrupted run and reaches the same result as an uninterrupted one.
Under ``torchrun`` it trains data-parallel (``torchrun ... -m quicksketch_lib train``).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .augment import seeded_augmenter
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import NORM_MEAN, NORM_STD, BatchLoader, RowFingerprints, SketchData, shard_indices, stratified_split
from .device import configure_threads, dist_info, rank_device, resolve_precision, set_seed
from .errors import CheckpointError, TrainingError, check_fields, finite_number, whole_number
from .files import atomic_write, check_output_file, exclusive_lock
from .evaluation import evaluate_loader
from .model import ModelConfig, SketchCNN
from .progress import progress_bar
from .train_step import (TrainStep, build_ema, build_optimizer, build_scheduler, load_optimizer_state,
                         portable_lr_state, uses_cuda_graphs)


OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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
    partial: float = 0.0  # share of training drawings cut to a part of their ink (augment.partial_ink)
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

    def __post_init__(self):
        """Refuse a value no run can use: ValueError ``field=value: expected ...`` (the command
        line turns it into a usage error, exit 2, for options and ``--set`` alike)."""
        whole, real = whole_number, finite_number
        check_fields(self, {
            "epochs": (whole(self.epochs, 1), "a whole number of at least 1"),
            "batch_size": (whole(self.batch_size, 1), "a whole number of at least 1"),
            "lr": (real(self.lr) and self.lr > 0, "a finite number above 0"),
            "weight_decay": (real(self.weight_decay) and self.weight_decay >= 0, "a finite number of at least 0"),
            "optimizer": (self.optimizer in OPTIMIZERS, _one_of(OPTIMIZERS)),
            "schedule": (self.schedule in SCHEDULES, _one_of(SCHEDULES)),
            "step_size": (whole(self.step_size, 1), "a whole number of at least 1"),
            "gamma": (real(self.gamma) and self.gamma > 0, "a finite number above 0"),
            "warmup_epochs": (real(self.warmup_epochs) and self.warmup_epochs >= 0, "a finite number of at least 0"),
            "label_smoothing": (real(self.label_smoothing) and 0 <= self.label_smoothing < 1, "a number in [0, 1)"),
            "augment": (real(self.augment) and self.augment >= 0, "a finite number of at least 0"),
            "partial": (real(self.partial) and 0 <= self.partial <= 1, "a number in [0, 1]"),
            "ema_decay": (real(self.ema_decay) and 0 <= self.ema_decay < 1, "a number in [0, 1)"),
            "val_fraction": (real(self.val_fraction) and 0 < self.val_fraction < 1, "a number between 0 and 1"),
            "seed": (whole(self.seed, 0) and self.seed < 2**32, f"a whole number from 0 to {2**32 - 1}"),
            "recipe": (isinstance(self.recipe, str) and bool(self.recipe), "a recipe name"),
            "device": (isinstance(self.device, str) and bool(self.device), "a device name (auto, cpu, cuda ...)"),
            "precision": (self.precision in PRECISIONS, _one_of(PRECISIONS)),
            "num_threads": (whole(self.num_threads, 0), "a whole number of at least 0 (0 = torch's default)"),
            "max_batches": (self.max_batches is None or whole(self.max_batches, 1), "none or a whole number of at least 1"),
            **{flag: (isinstance(getattr(self, flag), bool), "true or false")
               for flag in ("tta_flip", "channels_last", "compile", "cuda_graphs")},
        })

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + " or " + choices[-1]


# TrainConfig fields that change what a run learns: a resumed run must keep them (``epochs``
# too when the schedule is planned over the whole run); the others only say how it runs.
RESULT_FIELDS = ("batch_size", "lr", "weight_decay", "optimizer", "schedule", "step_size", "gamma",
                 "warmup_epochs", "label_smoothing", "augment", "partial", "ema_decay", "tta_flip",
                 "val_fraction", "seed", "recipe", "max_batches")


@dataclass
class FitResult:
    model: SketchCNN
    history: list[dict]
    checkpoint: Checkpoint
    path: Path | None = None
    epochs_trained: int = 0  # in this call (0: a resumed run had already reached its epochs)

    @property
    def val_accuracy(self) -> float | None:
        """The last epoch's held-out accuracy; None when nothing was held out (not measured)."""
        return self.history[-1]["val_accuracy"] if self.history else None


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
    device = rank_device(config.device)
    state = _load_resume_state(out, data, config, model.config) if resume else None
    val_idx = state.split["val_indices"].numpy() if state is not None else None
    train_loader, val_loader, val_idx = make_loaders(data, config, device, val_idx)
    trained_rows = RowFingerprints(np.zeros(0, np.uint32))  # only rank 0 saves: only it reads every row
    if rank == 0:
        check_held_out(data, val_idx)
        trained_rows = RowFingerprints.of(data.images, np.setdiff1d(np.arange(len(data)), val_idx))
    run = start_run(model, config, device, len(train_loader), resume=state)

    if len(train_loader) == 0:
        raise TrainingError(f"no training batches: {len(train_loader.labels)} training drawings, max_batches="
                            f"{config.max_batches}; use more drawings or a positive --max-batches")
    ckpt = state
    start_epoch = run.epoch
    for epoch in range(run.epoch, config.epochs):
        train = train_one_epoch(run, train_loader, epoch=epoch, progress=progress and rank == 0)
        val = evaluate_run(run, val_loader)
        _check_finite(train["train_loss"], val["loss"], epoch + 1, config, out)
        run.history.append(_epoch_record(epoch, train, val, world))
        ckpt = _make_checkpoint(run, data, val_idx, trained_rows)
        if rank == 0:
            _report(run, ckpt, out, progress, callbacks)
        if world > 1:
            dist.barrier()
    if ckpt is None:
        raise TrainingError(f"epochs must be at least 1, got {config.epochs}")
    ckpt.path = out
    return FitResult(run.eval_model.eval(), run.history, ckpt, out,
                     epochs_trained=max(0, config.epochs - start_epoch))


def check_held_out(data: SketchData, val_idx: np.ndarray) -> None:
    """Warn when the held-out split cannot measure the model: no held-out drawing at all (its
    accuracy is then "not measured", never 0), or classes without one (a class of one
    drawing keeps it for training)."""
    held = np.bincount(np.asarray(data.labels)[np.asarray(val_idx, dtype=np.int64)], minlength=len(data.classes))
    if held.sum() == 0:
        warnings.warn(f"{data.root}: too little data to hold any drawing out ({min(data.counts)} per class): "
                      "the held-out accuracy is not measured; use at least 2 drawings per class "
                      "(hundreds for a trustworthy figure)")
    elif (held == 0).any():
        alone = [c for c, n in zip(data.classes, held) if n == 0]
        warnings.warn(f"{data.root}: class(es) {', '.join(map(repr, alone[:5]))}{' ...' if len(alone) > 5 else ''} "
                      "have a single drawing and none held out: the held-out accuracy does not cover them; "
                      "add drawings")


def _check_finite(train_loss: float, val_loss: float | None, epoch: int, config: TrainConfig, out) -> None:
    """Stop a diverged run before it saves: a NaN/infinite loss makes a useless model
    (``val_loss`` None: nothing was held out, so nothing to check there)."""
    if math.isfinite(train_loss) and (val_loss is None or math.isfinite(val_loss)):
        return
    kept = f"; {out} keeps the last good epoch" if out is not None and Path(out).exists() else \
        "; nothing was saved"
    held_out = "not measured" if val_loss is None else f"{val_loss:g}"
    raise TrainingError(f"training diverged in epoch {epoch}: the loss became {train_loss:g} (train) / "
                        f"{held_out} (held-out) with learning rate {config.lr:g}{kept}; "
                        "try a lower --lr")


def make_loaders(data: SketchData, config: TrainConfig, device: torch.device | str,
                 val_idx: np.ndarray | None = None) -> tuple[BatchLoader, BatchLoader, np.ndarray]:
    """The training and held-out loaders ``fit`` uses, and the held-out indices: a seeded,
    stratified ``val_fraction`` of every class (or the given ``val_idx``, when resuming).
    Under torchrun each loader holds this rank's shard."""
    rank, world = dist_info()
    if val_idx is None:
        train_idx, val_idx = stratified_split(data.labels, config.val_fraction, config.seed)
    else:
        train_idx = np.setdiff1d(np.arange(len(data)), val_idx)
    shard = shard_indices(train_idx, data.labels, rank, world) if world > 1 else train_idx
    train = BatchLoader(data.images[shard], data.labels[shard], config.batch_size, shuffle=True,
                        seed=config.seed, device=device, channels_last=config.channels_last,
                        max_batches=config.max_batches)
    val_shard = val_idx[rank::world]
    val = BatchLoader(data.images[val_shard], data.labels[val_shard], 1024, device=device,
                      channels_last=config.channels_last,
                      max_batches=None if config.max_batches is None else max(1, config.max_batches // 2))
    return train, val, val_idx


@dataclass
class Run:
    """One training run's state: what :func:`train_one_epoch` steps and a checkpoint saves.
    Built by :func:`start_run`; ``epoch`` and ``history`` count the epochs done."""

    config: TrainConfig
    model: SketchCNN  # the weights being trained (``step.model`` may wrap it: DDP, compile)
    step: TrainStep
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: nn.Module | None = None
    augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    epoch: int = 0
    history: list[dict] = field(default_factory=list)

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated and saved: the EMA weights when there are some."""
        return self.ema.module if self.ema is not None else self.model


def start_run(model: SketchCNN, config: TrainConfig, device: torch.device, steps_per_epoch: int,
              resume: Checkpoint | None = None) -> Run:
    """Move ``model`` to ``device`` and build what trains it (optimizer, schedule, EMA,
    augmentation, the :class:`TrainStep`); with ``resume``, continue from that checkpoint."""
    world = dist_info()[1]
    dtype = resolve_precision(config.precision, device)
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    graphed = uses_cuda_graphs(config, device, dtype, world)
    optimizer = build_optimizer(model, config, graphed=graphed)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    step = TrainStep(_wrap(model, config, device, world), optimizer, criterion, device, dtype, scaler,
                     cuda_graph=graphed)
    run = Run(config, model, step, build_scheduler(optimizer, config, steps_per_epoch),
              build_ema(model, config.ema_decay),
              seeded_augmenter(config.augment, config.seed, config.partial)
              if config.augment > 0 or config.partial > 0 else None)
    if resume is not None:
        _restore(run, resume)
    return run


def _wrap(model: nn.Module, config: TrainConfig, device: torch.device, world: int) -> nn.Module:
    """The model as the step calls it: DistributedDataParallel under torchrun, compiled on request."""
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if config.compile else model


def train_one_epoch(run: Run, loader: BatchLoader, *, epoch: int = 0, progress: bool = False) -> dict:
    """One pass over ``loader``: a step per batch (augmented, per-batch schedule, EMA),
    then the per-epoch schedule. Returns the epoch's training loss, accuracy, images,
    learning rate and seconds."""
    config, step = run.config, run.step
    loader.set_epoch(epoch)
    t0 = time.perf_counter()
    step.model.train()
    step.reset()
    bar = progress_bar(loader, enabled=progress, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                       unit="batch", mininterval=0.5)
    for i, (x, y) in enumerate(bar):
        if run.augment is not None:
            x = run.augment(x, epoch * 100_003 + i)
        step(x, y)
        if config.schedule != "step":
            run.scheduler.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        if not bar.disable and i % 20 == 0:  # stats() synchronises: only for a visible bar
            bar.set_postfix(loss=f"{step.stats()['train_loss']:.3f}")
    stats = {**step.stats(), "lr": float(step.optimizer.param_groups[0]["lr"])}
    if config.schedule == "step":
        run.scheduler.step()
    run.epoch = epoch + 1
    return {**stats, "seconds": time.perf_counter() - t0}


def evaluate_run(run: Run, loader: BatchLoader) -> dict:
    """Held-out loss and accuracy of the run's weights (EMA when on), summed over ranks."""
    if dist_info()[1] > 1:  # BatchNorm statistics differ per rank: use rank 0's, which it saves
        for buffer in run.eval_model.buffers():
            dist.broadcast(buffer, 0)
    return evaluate_loader(run.eval_model, loader, run.step.dtype, flip=run.config.tta_flip)


def _epoch_record(epoch: int, train: dict, val: dict, world: int) -> dict:
    seconds = train["seconds"]
    stats = {k: v for k, v in train.items() if k != "seconds"}
    return {"epoch": epoch + 1, **stats, "val_loss": val["loss"], "val_accuracy": val["accuracy"],
            "seconds": seconds, "images_per_s": train["images"] * world / max(seconds, 1e-9)}


def _report(run: Run, ckpt: Checkpoint, out: Path | None, progress: bool, callbacks) -> None:
    """Rank 0's end of an epoch: print the record, save the checkpoint and history, call back."""
    record = run.history[-1]
    if progress:
        print(_format_record(record, run.config.epochs), flush=True)
    if out is not None:
        save_checkpoint(ckpt, out)
        write_history(run.history, out)
    for cb in callbacks or []:
        cb(record)


def _format_record(r: dict, epochs: int) -> str:
    val = (f"val loss {r['val_loss']:.4f}  val acc {r['val_accuracy']:.2%}" if r["val_accuracy"] is not None
           else "val not measured (no held-out drawing)")
    return (f"epoch {r['epoch']:>2}/{epochs}  train loss {r['train_loss']:.4f}  "
            f"train acc {r['train_accuracy']:.2%}  {val}  lr {r['lr']:.2e}  {r['images_per_s']:,.0f} img/s")


def format_accuracy(value: float | None) -> str:
    """A held-out accuracy for people: ``95.28 %``-style, or "not measured" when nothing was held out."""
    return "not measured (no drawing was held out)" if value is None else f"{value:.2%}"


# --------------------------------------------------------------------------- checkpoints
def _make_checkpoint(run: Run, data: SketchData, val_idx: np.ndarray, trained_rows: RowFingerprints) -> Checkpoint:
    """The run after its latest epoch: weights (EMA's when on), what they need for
    inference, the history and split, the fingerprint of every drawing it trained on
    (``data["train_rows"]``, so evaluation recognises them anywhere), and the state to
    resume from."""
    config, history = run.config, run.history
    train_state = {
        "epoch": run.epoch,
        "optimizer": portable_lr_state(run.step.optimizer.state_dict()),
        "scheduler": portable_lr_state(run.scheduler.state_dict()),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if run.ema is not None:  # the checkpoint's weights are the EMA's; keep the raw ones too
        train_state["model_state"] = _cpu_state(run.model)
        train_state["ema_state"] = _cpu_state(run.ema)
    last = history[-1]
    return Checkpoint(
        model_state=_cpu_state(run.eval_model),
        model_config=run.model.config,
        classes=list(data.classes),
        normalization={"mean": NORM_MEAN, "std": NORM_STD,
                       "input": "uint8 (N, 784) or (N, 28, 28), 0 = background, 255 = ink"},
        train_config=config.to_dict(),
        metrics={"val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
                 "train_accuracy": last["train_accuracy"], "epochs": run.epoch,
                 "train_seconds": sum(h["seconds"] for h in history)},
        history=list(history),
        data={**data.fingerprint(), "root": str(Path(data.root).resolve()) if data.root else "",
              "synthetic": data.synthetic, "train_rows": trained_rows.to_dict()},
        split={"val_indices": torch.as_tensor(val_idx, dtype=torch.int64),
               "seed": config.seed, "val_fraction": config.val_fraction},
        train_state=train_state,
    )


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _load_resume_state(out: Path | None, data: SketchData, config: TrainConfig,
                       model_config: ModelConfig) -> Checkpoint | None:
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
    stored, given = ckpt.model_config.to_dict(), model_config.to_dict()
    differ = [f"{k} {stored[k]!r} -> {given[k]!r}" for k in stored if stored[k] != given.get(k)]
    if differ:
        raise TrainingError(f"{out}: cannot resume with another model ({'; '.join(differ)}); resume with "
                            "the run's own model (leave model.* out) or train afresh with another --out")
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
    """The :data:`RESULT_FIELDS` (and ``epochs``) of the run saved at ``out``, and its
    architecture under ``"model"`` (a ``ModelConfig`` dict); {} when there is none: what
    ``quicksketch train --resume`` uses for options not given."""
    out = Path(out)
    if not out.is_file():
        return {}
    ckpt = load_checkpoint(out)
    stored = ckpt.train_config
    return {**{k: stored[k] for k in RESULT_FIELDS + ("epochs",) if k in stored},
            "model": ckpt.model_config.to_dict()}


def _restore(run: Run, ckpt: Checkpoint) -> None:
    """Continue ``run`` from ``ckpt``: weights, optimizer, schedule, EMA, RNG, history."""
    ts = ckpt.train_state
    run.model.load_state_dict(ts.get("model_state", ckpt.model_state))
    load_optimizer_state(run.step.optimizer, ts["optimizer"])
    run.scheduler.load_state_dict(ts["scheduler"])
    if run.ema is not None and "ema_state" in ts:
        run.ema.load_state_dict(ts["ema_state"])
    torch.set_rng_state(ts["torch_rng"])
    if ts.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ts["cuda_rng"])
    run.epoch, run.history = int(ts["epoch"]), list(ckpt.history)


def history_path(checkpoint_path: str | os.PathLike) -> Path:
    p = Path(checkpoint_path)
    return p.with_name(p.stem + ".history.json")


def write_history(history: list[dict], checkpoint_path: str | os.PathLike) -> Path:
    """Save the per-epoch history as JSON next to the weights (atomically)."""
    path = history_path(checkpoint_path)
    with atomic_write(path, "w") as f:
        json.dump(history, f, indent=1)
    return path
