"""Tests for quicksketch_lib/augment.py: light, drawing-preserving batch augmentation."""

import time

import pytest
import torch

from quicksketch_lib.augment import MIN_PARTIAL_SHARE, augment_batch, jitter_thickness, partial_ink, random_affine


def sketch_batch(n: int = 8) -> torch.Tensor:
    """Normalised batch (background -1, ink +1): a square outline and a diagonal per drawing."""
    x = torch.full((n, 1, 28, 28), -1.0)
    for i in range(n):
        lo, hi = 6 + i % 3, 20 - i % 4
        x[i, 0, lo, lo:hi] = x[i, 0, hi, lo:hi] = 1.0
        x[i, 0, lo:hi + 1, lo] = x[i, 0, lo:hi + 1, hi] = 1.0
        idx = torch.arange(8, 20)
        x[i, 0, idx, idx] = 1.0
    return x


def ink(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).sum(dim=(1, 2, 3))


def test_strength_zero_is_identity():
    x = sketch_batch()
    assert augment_batch(x, 0.0, torch.Generator().manual_seed(0)) is x


def test_shape_dtype_range_and_memory_format_kept():
    x = sketch_batch(16).contiguous(memory_format=torch.channels_last)
    y = augment_batch(x, 1.0, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert y.min() >= -1 and y.max() <= 1
    assert not torch.equal(x, y)


def test_deterministic_given_the_generator():
    x = sketch_batch()
    a = augment_batch(x, 1.0, torch.Generator().manual_seed(7))
    b = augment_batch(x, 1.0, torch.Generator().manual_seed(7))
    c = augment_batch(x, 1.0, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_every_drawing_gets_its_own_transform():
    x = sketch_batch(1).repeat(6, 1, 1, 1)
    y = augment_batch(x, 1.0, torch.Generator().manual_seed(0))
    assert len({tuple(row.flatten().tolist()) for row in y}) == 6


def test_identity_transform_reproduces_the_drawing():
    """Zero strength and no mirror give the identity matrix, and sampling with it is exact."""
    theta = random_affine(4, 0.0, torch.Generator().manual_seed(0), flip=0.0)
    assert torch.allclose(theta, torch.eye(2, 3).expand(4, 2, 3))
    x = sketch_batch(4)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    y = torch.nn.functional.grid_sample(x + 1, grid, align_corners=False) - 1
    assert torch.allclose(x, y, atol=1e-5)


def test_mirror_probability():
    always = random_affine(64, 1.0, torch.Generator().manual_seed(0), flip=1.0)
    never = random_affine(64, 1.0, torch.Generator().manual_seed(0), flip=0.0)
    assert (always[:, 0, 0] < 0).all() and (never[:, 0, 0] > 0).all()


def test_small_transforms_keep_the_drawing():
    """Background stays background; ink is neither lost nor smeared over the canvas."""
    blank = torch.full((4, 1, 28, 28), -1.0)
    assert torch.equal(augment_batch(blank, 1.0, torch.Generator().manual_seed(0)), blank)
    x = sketch_batch(32)
    y = augment_batch(x, 1.0, torch.Generator().manual_seed(0))
    ratio = ink(y) / ink(x)
    assert (ratio > 0.5).all() and (ratio < 2.5).all()
    # the drawing stays near where it was: most augmented ink lies on or next to the original strokes
    near = torch.nn.functional.max_pool2d(x, 7, stride=1, padding=3) > 0
    inside = (((y + 1) / 2) * near).sum() / ((y + 1) / 2).sum()
    assert inside > 0.9


def test_thickness_jitter_thickens_and_thins():
    x = sketch_batch(2)
    thicker = jitter_thickness(x, torch.tensor([1.0, 0.0]))
    thinner = jitter_thickness(x, torch.tensor([-1.0, 0.0]))
    assert ink(thicker)[0] > ink(x)[0] and ink(thinner)[0] < ink(x)[0]
    assert torch.equal(thicker[1], x[1]) and torch.equal(thinner[1], x[1])


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        augment_batch(torch.zeros(4, 28, 28), 1.0)


def test_fast_on_cpu():
    """Augmenting a 256-drawing batch costs a small fraction of one SketchCNN training step.

    Timed relative to the step, so the test holds on a busy shared machine.
    """
    from quicksketch_lib.model import SketchCNN

    x = sketch_batch(256)
    g = torch.Generator().manual_seed(0)
    model = SketchCNN()
    augment_batch(x, 1.0, g)

    def best_of(fn, n=3):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    aug = best_of(lambda: augment_batch(x, 1.0, g))
    step = best_of(lambda: model(x).sum().backward(), n=2)
    assert aug < 0.2 * step, f"augment {aug * 1e3:.0f} ms vs training step {step * 1e3:.0f} ms"


def test_partial_ink_keeps_a_contiguous_share_of_the_ink():
    x = sketch_batch(6)
    g = torch.Generator().manual_seed(0)
    y = partial_ink(x, 1.0, g)
    assert y.shape == x.shape and y.dtype == x.dtype
    kept = (y > -1).sum((1, 2, 3)).float() / (x > -1).sum((1, 2, 3)).float()
    # every drawing keeps between MIN_PARTIAL_SHARE and all of its ink (ties on the cut line may keep a little more)
    assert (kept >= MIN_PARTIAL_SHARE - 0.05).all() and (kept <= 1).all() and (kept < 0.999).any()
    # nothing new is drawn: what is left is the original ink, the rest is background
    assert torch.equal(torch.where(y > -1, x, y), y) and ((y == x) | (y == -1)).all()


def test_partial_ink_is_seeded_and_off_at_zero():
    x = sketch_batch(8)
    assert partial_ink(x, 0.0, torch.Generator().manual_seed(0)) is x
    a = partial_ink(x, 0.5, torch.Generator().manual_seed(3))
    b = partial_ink(x, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    untouched = [(a[i] == x[i]).all().item() for i in range(len(x))]
    assert 0 < sum(untouched) < len(x)  # with probability 0.5 some drawings are cut, some are not
    blank = torch.full((2, 1, 28, 28), -1.0)
    assert torch.equal(partial_ink(blank, 1.0, torch.Generator().manual_seed(0)), blank)
