"""Light, drawing-preserving augmentation for normalised 28x28 sketch batches.

``augment_batch(x, strength, generator)`` takes a float batch ``(B, 1, 28, 28)`` in
[-1, 1] (background -1, ink +1, as ``BatchLoader`` yields it) and returns a batch of
the same shape, dtype and memory format where every drawing got its own

* small affine change: rotation up to ``10°``, zoom ``±10%``, shift ``±1.4 px``
  (all times ``strength``), plus a horizontal mirror with probability ``flip``;
  one ``affine_grid``/``grid_sample`` call for the whole batch, and
* stroke-thickness jitter: a per-drawing blend towards the 3x3 max-pool (thicker
  strokes) or min-pool (thinner strokes) of the drawing.

``partial_ink(x, prob, generator)`` shows a drawing stopped part-way: with probability
``prob`` a drawing keeps only the first share (30-100 %) of its ink along a random
direction, as if the player had not finished (``TrainConfig.partial``).

Everything is vectorised (no per-sample Python) and the random draws come only from
``generator``, so the same generator seed gives the same batch. ``strength`` 0 returns
``x`` unchanged. Training calls it through ``TrainConfig.augment`` (:func:`seeded_augmenter`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_ROTATION_DEG = 10.0
MAX_ZOOM = 0.10  # fraction of the drawing's size
MAX_SHIFT = 0.10  # fraction of half the canvas: 0.1 * 14 px = 1.4 px
MAX_THICKEN = 0.5  # blend weight towards the dilated drawing
MAX_THIN = 0.25  # blend weight towards the eroded drawing (thin strokes vanish fast)
MIN_PARTIAL_SHARE = 0.3  # a partial drawing keeps at least this share of its ink pixels


def random_affine(batch: int, strength: float, generator: torch.Generator | None = None,
                  flip: float = 0.5, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(batch, 2, 3)`` matrices for ``F.affine_grid`` (output -> input coordinates)."""
    u = torch.rand(batch, 4, generator=generator, device=device) * 2 - 1  # uniform [-1, 1)
    angle = u[:, 0] * math.radians(MAX_ROTATION_DEG) * strength
    zoom = 1 + u[:, 1] * MAX_ZOOM * strength
    shift = u[:, 2:4] * MAX_SHIFT * strength
    mirror = torch.rand(batch, generator=generator, device=device) < flip
    sx = torch.where(mirror, -1.0, 1.0).to(u)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    row0 = torch.stack([cos * sx, -sin, shift[:, 0]], dim=1)
    row1 = torch.stack([sin * sx, cos, shift[:, 1]], dim=1)
    return torch.stack([row0, row1], dim=1)


def jitter_thickness(x: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Thicken (``amount`` > 0) or thin (< 0) strokes; ``amount`` is ``(B,)`` in [-1, 1].

    ``x`` is ink-high (background -1): 3x3 max-pool dilates strokes, min-pool erodes them.
    """
    a = amount.to(x.dtype).view(-1, 1, 1, 1)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return x + a.clamp(min=0) * (thick - x) + (-a).clamp(min=0) * (thin - x)


def augment_batch(x: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None,
                  *, flip: float = 0.5) -> torch.Tensor:
    """Randomly transform a normalised sketch batch ``(B, 1, 28, 28)`` in [-1, 1]; see module doc."""
    if strength <= 0:
        return x
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"augment_batch expects a (B, 1, H, W) batch, got shape {tuple(x.shape)}")
    b = x.shape[0]
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    theta = random_affine(b, strength, generator, flip, x.device).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # shift so the background is 0: grid_sample pads with zeros, i.e. with background
    out = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
    u = torch.rand(b, generator=generator, device=x.device) * 2 - 1
    amount = torch.where(u > 0, u * MAX_THICKEN, u * MAX_THIN) * min(strength, 2.0)
    out = jitter_thickness(out, amount).clamp_(-1, 1)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def partial_ink(x: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drawings stopped part-way: each drawing of the normalised batch ``(B, 1, H, W)`` is, with
    probability ``prob``, cut to the first share ``s`` ~ U[0.3, 1) of its ink pixels along a random
    direction (ink beyond that line becomes background). A cheap stand-in for the early strokes
    of a drawing, made from a finished bitmap. ``prob`` 0 returns ``x`` unchanged."""
    if prob <= 0:
        return x
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"partial_ink expects a (B, 1, H, W) batch, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    u = torch.rand(b, 3, generator=generator, device=x.device)
    angle = u[:, 0] * 2 * math.pi
    share = MIN_PARTIAL_SHARE + (1 - MIN_PARTIAL_SHARE) * u[:, 1]
    rows, cols = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device),
                                indexing="ij")
    along = (torch.cos(angle)[:, None] * cols.reshape(1, -1) + torch.sin(angle)[:, None] * rows.reshape(1, -1))
    ink = x.reshape(b, -1) > -1
    along = along.masked_fill(~ink, math.inf)  # background sorts last
    n_ink = ink.sum(1)
    k = (share * n_ink).long().clamp(min=1) - 1
    cut = along.sort(dim=1).values.gather(1, k[:, None])
    cut_here = (u[:, 2] < prob) & (n_ink > 0)
    keep = (along <= cut) | ~cut_here[:, None]
    return torch.where(keep.view(b, 1, h, w), x, torch.full_like(x, -1))


def seeded_augmenter(strength: float, seed: int, partial: float = 0.0):
    """``augment(x, batch_seed)`` for training: :func:`partial_ink`, then :func:`augment_batch`,
    with a generator seeded from the run's ``seed`` and the batch's own number, so a resumed
    run sees the same draws."""
    def augment(x: torch.Tensor, batch_seed: int) -> torch.Tensor:
        g = torch.Generator(device=x.device).manual_seed(seed * 7_919 + batch_seed)
        return augment_batch(partial_ink(x, partial, g), strength, g)
    return augment
