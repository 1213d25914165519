"""SYNTHETIC doodles: the offline default data set the project makes itself.

When there is no network and no Quick Draw data, QuickSketch still needs
something honest to train on. This module draws simple things as strokes the
way a hurried person might — wobbly lines, jitter, overshoot and unclosed
shapes, random rotation, scale and aspect, different start points, directions
and stroke orders — and rasterises them with the same
:func:`~quicksketch_lib.rasterize.rasterize_strokes` that turns real Quick Draw
strokes and on-screen drawings into 28x28 bitmaps.

These are **procedurally generated doodles, not Quick Draw data**; every folder
written here carries a ``SYNTHETIC.txt`` marker saying so. To use real data
instead, download it (``quicksketch download``) or point the data folder at
Google's ``numpy_bitmap`` files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .drawing import PIXELS
from .files import atomic_write, save_npy_atomic
from .progress import progress_bar
from .rasterize import rasterize_strokes, sample_along

MARKER_FILE = "SYNTHETIC.txt"
MARKER_TEXT = """\
SYNTHETIC DATA - NOT QUICK, DRAW! DRAWINGS

Every file in this folder was generated procedurally by quicksketch_lib.doodles
(generate_doodles, seed={seed}, {per_class} drawings per class): simple shapes drawn
as strokes with random wobble, jitter, overshoot, rotation and scale, then
rasterised to 28x28 with quicksketch_lib.rasterize.rasterize_strokes.
They are an offline stand-in so the project runs without a network; they are
NOT Google's Quick, Draw! data and accuracy on them says little about real sketches.

Classes: {classes}
Format: <class>.npy, shape (N, 784), dtype uint8, 0 = background, 255 = ink.
To use real data, run `quicksketch download --classes ... --out data/quickdraw`
(see README, 'Real data') and train on that folder instead.
"""

Stroke = np.ndarray  # (n, 2) float points, y pointing down


# --------------------------------------------------------------------------- shape helpers
def _arc(cx, cy, rx, ry, start, sweep, n=None) -> Stroke:
    """Points on an elliptical arc from angle ``start`` sweeping ``sweep`` radians."""
    n = n or max(8, int(abs(sweep) * 10))
    t = start + np.linspace(0.0, sweep, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _polyline(points, closed: bool = False) -> Stroke:
    pts = np.asarray(points, dtype=np.float64)
    return np.vstack([pts, pts[:1]]) if closed else pts


def _densify(stroke: Stroke, step: float = 0.04) -> Stroke:
    """Extra points along straight segments so wobble can bend them (corners kept)."""
    return sample_along(stroke, lambda arc: np.union1d(
        np.linspace(0, arc[-1], max(2, int(arc[-1] / step) + 1)), arc))


def _loop_from(points: np.ndarray, rng, overshoot: float = 0.12) -> Stroke:
    """A closed polygon drawn from a random corner, either direction, ending short or long."""
    pts = np.roll(points, -int(rng.integers(len(points))), axis=0)
    if rng.random() < 0.5:
        pts = pts[::-1]
    closed = _densify(_polyline(pts, closed=True))
    end = 1.0 + rng.uniform(-overshoot, overshoot)
    return _trim(closed, end)


def _trim(stroke: Stroke, fraction: float) -> Stroke:
    """Keep ``fraction`` of a closed stroke's length (>1 continues round the start again)."""
    def positions(arc: np.ndarray) -> np.ndarray:
        total = arc[-1]
        at = np.linspace(0.0, total * fraction, max(4, int(len(stroke) * fraction)))
        return np.where(at > total, at - total, at)
    return sample_along(stroke, positions)


def _round_corners(points: np.ndarray, amount: float) -> np.ndarray:
    """Chaikin-style corner cutting: 0 keeps a polygon, 1 makes it nearly an ellipse."""
    pts = points
    for _ in range(int(round(amount * 4))):
        nxt = np.roll(pts, -1, axis=0)
        pts = np.concatenate([0.75 * pts + 0.25 * nxt, 0.25 * pts + 0.75 * nxt])
        pts = pts.reshape(2, -1, 2).transpose(1, 0, 2).reshape(-1, 2)
    return pts


def _split(stroke: Stroke, rng, max_parts: int) -> list[Stroke]:
    """Break one stroke into 1..max_parts pieces at random points (pen lifts)."""
    parts = int(rng.integers(1, max_parts + 1))
    if parts == 1 or len(stroke) < 2 * parts:
        return [stroke]
    cuts = np.sort(rng.choice(np.arange(2, len(stroke) - 1), parts - 1, replace=False))
    return [p for p in np.split(stroke, cuts) if len(p)]


# --------------------------------------------------------------------------- the classes
def _circle(rng) -> list[Stroke]:
    sweep = 2 * np.pi * rng.uniform(0.8, 1.2) * rng.choice([-1, 1])
    n = 60 if rng.random() < 0.7 else int(rng.integers(5, 9))  # some are lumpy polygons
    stroke = _densify(_arc(0, 0, 1, rng.uniform(0.7, 1.3), rng.uniform(0, 2 * np.pi), sweep, n))
    return _split(stroke, rng, 2) if rng.random() < 0.15 else [stroke]


def _square(rng) -> list[Stroke]:
    h = rng.uniform(0.8, 1.2)
    corners = np.array([[-1, -h], [1, -h], [1, h], [-1, h]], dtype=np.float64)
    corners = _round_corners(corners, rng.uniform(0.1, 1.0) if rng.random() < 0.45 else 0)
    stroke = _loop_from(corners, rng)
    return _split(stroke, rng, 4) if rng.random() < 0.4 else [stroke]


def _triangle(rng) -> list[Stroke]:
    apex = [rng.uniform(-0.4, 0.4), -1.0]
    corners = np.array([apex, [1.0, rng.uniform(0.6, 1.0)], [-1.0, rng.uniform(0.6, 1.0)]])
    stroke = _loop_from(corners, rng)
    return _split(stroke, rng, 3) if rng.random() < 0.4 else [stroke]


def _star(rng) -> list[Stroke]:
    start = -np.pi / 2 + rng.normal(0, 0.15)
    if rng.random() < 0.4:  # the one-stroke pentagram
        angles = start + np.arange(5) * 4 * np.pi / 5
        pts = np.stack([np.cos(angles), np.sin(angles)], 1)
    else:  # the outline with inner corners
        inner = rng.uniform(0.35, 0.75)
        angles = start + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    return [_loop_from(pts, rng, overshoot=0.06)]


def _house(rng) -> list[Stroke]:
    w, top, roof = rng.uniform(0.7, 1.0), rng.uniform(-0.1, 0.2), rng.uniform(-1.1, -0.6)
    body = _loop_from(np.array([[-w, top], [w, top], [w, 1.0], [-w, 1.0]]), rng, 0.08)
    eave = rng.uniform(0, 0.2)
    strokes = [body, _densify(_polyline([[-w - eave, top], [rng.normal(0, 0.1), roof],
                                         [w + eave, top]]))]
    if rng.random() < 0.5:  # a door
        dx, dw, dh = rng.uniform(-0.4, 0.3), rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.6)
        strokes.append(_densify(_polyline([[dx, 1.0], [dx, 1 - dh], [dx + dw, 1 - dh],
                                           [dx + dw, 1.0]])))
    if rng.random() < 0.3:  # a window
        wx, wy, s = rng.uniform(0.2, 0.5) * rng.choice([-1, 1]), top + 0.25, 0.18
        strokes.append(_loop_from(np.array([[wx - s, wy], [wx + s, wy], [wx + s, wy + 2 * s],
                                            [wx - s, wy + 2 * s]]), rng, 0.05))
    return strokes


def _smiley(rng) -> list[Stroke]:
    face = _circle(rng)
    ex, ey = rng.uniform(0.25, 0.45), rng.uniform(-0.45, -0.2)
    eyes = []
    for side in (-1, 1)[: 2 if rng.random() < 0.85 else 0]:  # some faces have no eyes
        if rng.random() < 0.6:
            eyes.append(np.array([[side * ex, ey], [side * ex + 0.02, ey + 0.05]]))
        else:
            eyes.append(_arc(side * ex, ey, 0.08, 0.1, 0, 2 * np.pi, 12))
    width = rng.uniform(0.2, 0.6)
    mouth = _arc(0, rng.uniform(0.0, 0.2), width, rng.uniform(0.2, 0.4),
                 rng.uniform(0.1, 0.4), rng.uniform(2.2, 2.9), 24)
    strokes = face + eyes + [mouth]
    return strokes if rng.random() < 0.7 else strokes[len(face):] + face


def _zigzag(rng) -> list[Stroke]:
    n = int(rng.integers(2, 8))
    xs = np.linspace(-1, 1, n + 1) + rng.normal(0, 0.05, n + 1)
    ys = np.where(np.arange(n + 1) % 2 == 0, -1.0, 1.0) * rng.uniform(0.2, 0.6)
    ys = ys + rng.normal(0, 0.06, n + 1)
    return [_densify(np.stack([xs, ys], 1))]


def _spiral(rng) -> list[Stroke]:
    turns = rng.uniform(1.2, 3.5)
    t = np.linspace(0, turns * 2 * np.pi, int(turns * 40))
    r = (t / t[-1]) ** rng.uniform(0.5, 1.2) + rng.uniform(0, 0.3)
    sign = rng.choice([-1, 1])
    pts = np.stack([r * np.cos(sign * t), r * np.sin(sign * t)], 1)
    return [pts if rng.random() < 0.7 else pts[::-1]]


def _arrow(rng) -> list[Stroke]:
    shaft = _densify(_polyline([[-1.0, 0.0], [1.0, 0.0]]))
    head_len, spread = rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)
    wing_a = [1 - head_len, -spread * head_len * 1.5]
    wing_b = [1 - head_len, spread * head_len * 1.5]
    if rng.random() < 0.6:
        head = [_densify(_polyline([wing_a, [1.0, 0.0], wing_b]))]
    else:
        head = [_densify(_polyline([[1.0, 0.0], wing_a])), _densify(_polyline([[1.0, 0.0], wing_b]))]
    strokes = [shaft] + head
    return strokes if rng.random() < 0.8 else head + [shaft[::-1]]


def _cloud(rng) -> list[Stroke]:
    bumps = int(rng.integers(4, 9))
    rx, ry = 1.0, rng.uniform(0.45, 0.9)
    edges = np.linspace(0, 2 * np.pi, bumps + 1)[:-1] + rng.normal(0, 0.15, bumps)
    edges = np.sort(edges) + rng.uniform(0, 2 * np.pi)
    pieces = []
    for a0, a1 in zip(edges, np.append(edges[1:], edges[0] + 2 * np.pi)):
        p0 = np.array([rx * np.cos(a0), ry * np.sin(a0)])
        p1 = np.array([rx * np.cos(a1), ry * np.sin(a1)])
        mid, half = (p0 + p1) / 2, np.hypot(*(p1 - p0)) / 2
        base = np.arctan2(*(p1 - p0)[::-1])
        pieces.append(_arc(*mid, half, half * rng.uniform(0.2, 1.0), base + np.pi, np.pi, 14))
    stroke = np.concatenate(pieces)
    return [_trim(stroke, 1.0 + rng.uniform(-0.05, 0.08))]


DRAWERS: dict[str, Callable[[np.random.Generator], list[Stroke]]] = {
    "circle": _circle, "square": _square, "triangle": _triangle, "star": _star,
    "house": _house, "smiley": _smiley, "zigzag": _zigzag, "spiral": _spiral,
    "arrow": _arrow, "cloud": _cloud,
}
DOODLE_CLASSES: tuple[str, ...] = tuple(DRAWERS)


# --------------------------------------------------------------------------- variation
def _wobble(stroke: Stroke, rng, amount: float) -> Stroke:
    """Slow sideways drift along the stroke plus a little hand jitter."""
    if len(stroke) < 2:
        return stroke
    s = np.linspace(0.0, 1.0, len(stroke))[:, None]
    drift = sum(rng.normal(0, amount, (1, 2)) * np.sin(2 * np.pi * (f * s + rng.random((1, 2))))
                for f in (0.5, 1.3))
    return stroke + drift + rng.normal(0, amount * 0.15, stroke.shape)


def _hand_transform(strokes: list[Stroke], rng, rotate: float) -> list[Stroke]:
    """Random rotation, aspect, shear and screen scale/offset, as a person's hand varies."""
    angle = rng.normal(0, rotate)
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, -s], [s, c]]) @ np.array([[rng.uniform(0.8, 1.2), rng.normal(0, 0.12)],
                                                [0.0, rng.uniform(0.8, 1.2)]])
    scale, offset = rng.uniform(80, 400), rng.uniform(0, 300, 2)
    return [(p @ m.T) * scale + offset for p in strokes]


def draw_doodle(name: str, rng: np.random.Generator) -> list[list[list[float]]]:
    """One synthetic doodle of class ``name`` as strokes in Google's ``[xs, ys]`` layout.

    Coordinates are screen-like pixels (y down), ready for
    :func:`~quicksketch_lib.rasterize.rasterize_strokes`. The same generator
    state gives the same doodle.
    """
    if name not in DRAWERS:
        raise ValueError(f"unknown doodle class {name!r}; expected one of {', '.join(DOODLE_CLASSES)}")
    strokes = DRAWERS[name](rng)
    amount = rng.uniform(0.01, 0.09)
    strokes = [_wobble(p, rng, amount) for p in strokes]
    rotate = np.pi if name in ("arrow",) else 0.25
    return [[p[:, 0].round(2).tolist(), p[:, 1].round(2).tolist()]
            for p in _hand_transform(strokes, rng, rotate)]


def doodle_bitmaps(name: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rasterised doodles of one class as an (count, 784) uint8 array."""
    out = np.empty((count, PIXELS), dtype=np.uint8)
    for i in range(count):
        out[i] = rasterize_strokes(draw_doodle(name, rng)).reshape(-1)
    return out


# --------------------------------------------------------------------------- writing
def generate_doodles(out_dir, per_class: int = 2000, seed: int = 0, progress: bool = True, *,
                     classes: tuple[str, ...] = DOODLE_CLASSES) -> Path:
    """Write the SYNTHETIC doodle data set: ``<class>.npy`` (per_class, 784) uint8 and a marker.

    Each class uses its own generator seeded from ``(seed, class index)``, so
    the same arguments give the same bytes. Files are written to a temporary
    name and renamed, so a folder never holds a half-written ``.npy``;
    ``SYNTHETIC.txt`` says in plain words that these are generated doodles,
    not Quick Draw data. Returns ``out_dir``.
    """
    unknown = [c for c in classes if c not in DRAWERS]
    if unknown:
        raise ValueError(f"unknown doodle class(es) {unknown}; expected some of {DOODLE_CLASSES}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = MARKER_TEXT.format(seed=seed, per_class=per_class, classes=", ".join(classes))
    with atomic_write(out / MARKER_FILE, "w") as f:
        f.write(text)
    with progress_bar(total=per_class * len(classes), desc="synthetic doodles", unit="drawing",
                      enabled=progress) as bar:
        for name in classes:
            rng = np.random.default_rng([seed, DOODLE_CLASSES.index(name)])
            data = np.empty((per_class, PIXELS), dtype=np.uint8)
            for i in range(per_class):
                data[i] = rasterize_strokes(draw_doodle(name, rng)).reshape(-1)
                bar.update(1)
            save_npy_atomic(out / f"{name}.npy", data)
    return out
