"""One optimisation step: the optimizer and its learning-rate schedule, the step itself
(eager, or replayed as a CUDA graph) and optimizer state that moves between devices.

``fit`` (in :mod:`quicksketch_lib.training`) calls a :class:`TrainStep` once per batch.
On a GPU the whole step is captured once as a CUDA graph and replayed; that needs the
learning rate in a device tensor and a ``capturable`` optimizer. Checkpoints store the
learning rate as a plain float (:func:`portable_lr_state`) and :func:`load_optimizer_state`
loads it back into whichever kind of optimizer this run has, so a run saved on a GPU
resumes on a CPU and the other way round.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .device import autocast


def build_optimizer(model: nn.Module, config, graphed: bool = False) -> torch.optim.Optimizer:
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


def build_scheduler(optimizer, config, steps_per_epoch: int):
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


def lr_schedule(config, steps_per_epoch: int) -> list[float]:
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


def build_ema(model: nn.Module, decay: float):
    """An exponential moving average of ``model``'s weights (and buffers); None when ``decay`` is 0."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def uses_cuda_graphs(config, device: torch.device, dtype: torch.dtype | None, world: int = 1) -> bool:
    """Whether ``fit`` captures the training step as a CUDA graph (``config``: a
    ``TrainConfig``): on a GPU with ``cuda_graphs`` on, except with ``torch.compile``,
    DistributedDataParallel or fp16 (its loss scaler skips steps, which a replayed graph
    cannot)."""
    return (config.cuda_graphs and device.type == "cuda" and world == 1 and not config.compile
            and dtype != torch.float16)


def mean_metrics(sums: torch.Tensor) -> tuple[float, float, int]:
    """(mean loss, accuracy, images) from running sums (loss x images, correct, images)."""
    loss_sum, correct, total = sums.tolist()
    return loss_sum / max(total, 1), correct / max(total, 1), int(total)


class TrainStep:
    """One optimisation step per call, with the epoch's running loss/accuracy sums kept on
    the device (``sums``: loss x images, correct, images; no per-step synchronisation).

    With ``cuda_graph=True`` the first ``warmup`` steps run eagerly on a side stream (CUDA
    graphs need the lazy set-up done before capture), then the whole step -- forward,
    loss, backward, optimizer step and sums -- is captured once as a CUDA graph and each
    later batch of the same size is copied into the graph's input and replayed. This
    small model is limited by Python launching its many small kernels, not by the GPU, so
    replaying them as one graph is the GPU fast path (README, "Speed"). Batches of another
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
        loss, accuracy, images = mean_metrics(self.sums)
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


# --------------------------------------------------------------------------- portable optimizer state
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
