"""SketchCNN: the compact CNN that classifies 28x28 Quick Draw sketches.

Three conv blocks (64 -> 128 -> 256 channels), each a repeat of
Conv3x3-BatchNorm-LeakyReLU; MaxPool after blocks 1 and 2; adaptive average
pooling to 4x4; then Flatten -> Linear(4096 -> 256) -> LeakyReLU -> Dropout ->
Linear(num_classes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
from torch import nn

from .drawing import IMAGE_SIZE
from .errors import check_fields, finite_number, whole_number


@dataclass
class ModelConfig:
    """Architecture of a SketchCNN; the defaults are the original model's."""

    num_classes: int = 10
    in_channels: int = 1
    channels: tuple[int, ...] = (64, 128, 256)
    convs_per_block: int = 2
    pool_after: tuple[int, ...] = (0, 1)  # MaxPool after blocks 1 and 2
    pooled_size: int = 4  # adaptive AvgPool output side
    hidden: int = 256
    dropout: float = 0.5
    negative_slope: float = 0.01  # LeakyReLU slope (PyTorch default)

    def __post_init__(self):
        """Sequences become tuples; a value no SketchCNN can have is a ValueError
        ``field=value: expected ...`` (``quicksketch train --set model.FIELD=...``: exit 2)."""
        self.channels, self.pool_after = tuple(self.channels), tuple(self.pool_after)
        whole, real = whole_number, finite_number
        check_fields(self, {
            "num_classes": (whole(self.num_classes, 1), "a whole number of at least 1"),
            "in_channels": (whole(self.in_channels, 1), "a whole number of at least 1"),
            "channels": (len(self.channels) > 0 and all(whole(c, 1) for c in self.channels),
                         "one or more whole numbers of at least 1, e.g. 32,64,128"),
            "convs_per_block": (whole(self.convs_per_block, 1), "a whole number of at least 1"),
            "pool_after": (all(whole(i, 0) for i in self.pool_after), "block numbers from 0, e.g. 0,1"),
            "pooled_size": (whole(self.pooled_size, 1), "a whole number of at least 1"),
            "hidden": (whole(self.hidden, 1), "a whole number of at least 1"),
            "dropout": (real(self.dropout) and 0 <= self.dropout < 1, "a number in [0, 1)"),
            "negative_slope": (real(self.negative_slope) and self.negative_slope >= 0, "a finite number of at least 0"),
        })

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["pool_after"] = list(self.pool_after)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["channels"] = tuple(d.get("channels", cls.channels))
        d["pool_after"] = tuple(d.get("pool_after", cls.pool_after))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def conv_block(in_ch: int, out_ch: int, n_convs: int, slope: float) -> nn.Sequential:
    """``n_convs`` repeats of Conv3x3 (no bias) -> BatchNorm -> LeakyReLU."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(slope, inplace=True),
        ]
    return nn.Sequential(*layers)


class SketchCNN(nn.Module):
    """The QuickSketch classifier. Input ``(B, 1, 28, 28)`` normalised, output logits."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__()
        config = config or ModelConfig()
        if overrides:
            config = ModelConfig.from_dict({**config.to_dict(), **overrides})
        if config.num_classes < 2:
            raise ValueError(f"SketchCNN needs at least 2 classes, got {config.num_classes}")
        self.config = config
        blocks: list[nn.Module] = []
        in_ch = config.in_channels
        for i, out_ch in enumerate(config.channels):
            blocks.append(conv_block(in_ch, out_ch, config.convs_per_block, config.negative_slope))
            if i in config.pool_after:
                blocks.append(nn.MaxPool2d(2))
            in_ch = out_ch
        blocks.append(nn.AdaptiveAvgPool2d(config.pooled_size))
        self.features = nn.Sequential(*blocks)
        flat = in_ch * config.pooled_size**2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, config.hidden),
            nn.LeakyReLU(config.negative_slope, inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``hidden`` (256) features of each drawing that the head reads: everything but the
        last Linear (dropout is off in eval mode)."""
        return self.classifier[:-1](self.features(x))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution blocks' pooled output, flattened: the 4096 numbers per drawing that the
        hidden layer reads."""
        return self.features(x).flatten(1)

    @property
    def hidden_layer(self) -> nn.Linear:
        """Linear(4096 -> hidden): the layer between the body and the head."""
        return self.classifier[1]

    @property
    def head(self) -> nn.Linear:
        """The output layer, Linear(hidden -> num_classes): one row of weights per class."""
        return self.classifier[-1]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def summary(self, input_size: tuple[int, int, int] = (1, IMAGE_SIZE, IMAGE_SIZE)) -> str:
        """A table of every stage with its output shape, parameters and multiply-adds."""
        return model_summary(self, input_size)


# The head's parameters in a state dict: f"{HEAD_KEY}.weight", f"{HEAD_KEY}.bias".
HEAD_KEY = "classifier.4"
# The hidden layer's, Linear(4096 -> hidden): f"{HIDDEN_KEY}.weight", f"{HIDDEN_KEY}.bias".
HIDDEN_KEY = "classifier.1"


def build_model(config: ModelConfig | None, classes: Sequence[str]) -> SketchCNN:
    """A fresh SketchCNN of architecture ``config`` (default: the original) with one output per
    name in ``classes``."""
    return SketchCNN(replace(config or ModelConfig(), num_classes=len(classes)))


def flip_averaged_proba(model, x: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation: the mean of the class probabilities of each drawing and its
    mirror image. ``model`` maps a batch ``(N, 1, 28, 28)`` to logits (a module, or any
    function: the ONNX path passes one); probabilities are fp32 or wider."""
    def proba(images: torch.Tensor) -> torch.Tensor:
        logits = model(images)
        return logits.to(torch.promote_types(logits.dtype, torch.float32)).softmax(1)
    return (proba(x) + proba(x.flip(-1))) / 2


def model_summary(model: SketchCNN, input_size: tuple[int, int, int] = (1, IMAGE_SIZE, IMAGE_SIZE)) -> str:
    """Run one dummy forward pass and tabulate each stage's output shape, parameters and
    multiply-adds (MACs) for one drawing."""
    rows = [("input", tuple(input_size), 0, 0)]
    x = torch.zeros(1, *input_size)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for name, stage in _stages(model):
            macs = stage_macs(stage, x)
            x = stage(x)
            rows.append((name, tuple(x.shape[1:]), sum(p.numel() for p in stage.parameters()), macs))
    model.train(was_training)
    width = max(len(r[0]) for r in rows)
    lines = [f"{'stage':<{width}}  {'output shape':<16}{'params':>10}{'MACs':>14}"]
    lines += [f"{n:<{width}}  {str(s):<16}{p:>10,}{m:>14,}" for n, s, p, m in rows]
    lines.append(f"{'total':<{width}}  {'':<16}{model.num_parameters():>10,}{sum(r[3] for r in rows):>14,}")
    return "\n".join(lines)


def stage_macs(stage: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers in ``stage`` for one input ``x``
    (batch 1): a 3x3 convolution costs in_channels * 9 per output value, a Linear
    in_features per output. BatchNorm, activations and pooling are not counted."""
    total = 0

    def count(module, _inputs, out):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += out[0].numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += out[0].numel() * module.in_features
    hooks = [m.register_forward_hook(count) for m in stage.modules()]
    try:
        with torch.no_grad():
            stage(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return total


def _stages(model: SketchCNN):
    """Named top-level stages: conv blocks, pools, then classifier layers."""
    block = 0
    for module in model.features:
        if isinstance(module, nn.Sequential):
            block += 1
            yield f"block{block} ({len(module) // 3}x conv-bn-lrelu)", module
        else:
            yield type(module).__name__, module
    for module in model.classifier:
        yield type(module).__name__, module
