"""Strokes to 28x28 bitmaps the way Google made Quick Draw's ``numpy_bitmap`` files.

A drawing is a list of strokes in Google's ndjson layout: each stroke is
``[xs, ys]`` or ``[xs, ys, ts]`` (lists or arrays, floats allowed). The pipeline:

1. :func:`simplify_strokes` — Google's ``simplified`` procedure: align to the
   top-left, scale the longer side to 255 (aspect kept), resample at 1 px
   spacing, Ramer–Douglas–Peucker with epsilon 2.0.
2. :func:`render_simplified` — centre the bounding box in a 256x256 frame and
   draw antialiased white strokes on black with round caps and joins, line
   diameter 16 and 16 px padding at that scale, straight into ``size x size``.
   This mirrors Google's cairo renderer (``vector_to_raster`` in the
   quickdraw-dataset issues): a 256 + 2*16 + 16 = 304 unit frame scaled to 28.
   Coverage is computed from exact point-to-segment distances on an 8x8
   supersampled grid, only for pixels near the strokes, so it is fast and
   deterministic; each stroke is composited over the earlier ones like cairo.

:func:`rasterize_strokes` chains the two; the drawing widget and the synthetic
doodle generator call exactly that function. :func:`iter_ndjson` and
:func:`read_ndjson` read Google's ``raw`` and ``simplified`` files, and
:func:`ink`, :func:`bbox_size` and :func:`stroke_thickness` summarise bitmaps
for comparing rasterised strokes with real ones.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .drawing import FRAME, IMAGE_SIZE, LINE_DIAMETER, PADDING, as_image_batch, clean_strokes
from .errors import DataError, InputError

RDP_EPSILON = 2.0
SUPERSAMPLE = 8  # samples per pixel side when measuring coverage
NDJSON_KEYS = ("word", "countrycode", "timestamp", "recognized", "key_id", "drawing")

_SAMPLE_OFFSETS = np.stack(
    np.meshgrid((np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5,
                (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5),
    axis=-1,
).reshape(-1, 2).astype(np.float32)


# --------------------------------------------------------------------------- strokes
def _as_point_strokes(strokes) -> list[np.ndarray]:
    """All non-empty strokes of a drawing as (n, 2) x, y arrays (checked by :func:`clean_strokes`)."""
    return [points[:2].T for points in clean_strokes(strokes)]


def sample_along(points: np.ndarray, positions) -> np.ndarray:
    """Points of a polyline at the arc lengths ``positions(arc)`` returns, where ``arc``
    is the cumulative length at each vertex. Fewer than two points come back as they
    are; a polyline of zero length gives its first point."""
    if len(points) < 2:
        return points
    seg = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] == 0.0:
        return points[:1]
    at = positions(arc)
    return np.stack([np.interp(at, arc, points[:, 0]), np.interp(at, arc, points[:, 1])], 1)


def _resample(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Points along the polyline every ``spacing`` units, keeping both ends."""
    def every(arc: np.ndarray) -> np.ndarray:
        at = np.arange(0.0, arc[-1], spacing)
        return np.append(at, arc[-1]) if arc[-1] - at[-1] > 1e-9 else at
    return sample_along(points, every)


def rdp(points: np.ndarray, epsilon: float = RDP_EPSILON) -> np.ndarray:
    """Ramer–Douglas–Peucker: drop points closer than ``epsilon`` to the simplified line.

    Distances are to the infinite line through a span's end points (to the end
    point itself when both ends coincide, e.g. a closed stroke), as in the
    reference ``rdp`` package. Returns the kept points in order.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 3:
        return points.copy()
    keep = np.zeros(n, dtype=bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b, mid = points[i], points[j], points[i + 1:j]
        d = b - a
        norm = np.hypot(*d)
        if norm == 0.0:
            dist = np.hypot(*(mid - a).T)
        else:
            dist = np.abs(d[0] * (mid[:, 1] - a[1]) - d[1] * (mid[:, 0] - a[0])) / norm
        k = int(np.argmax(dist))
        if dist[k] > epsilon:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return points[keep]


def simplify_strokes(strokes) -> list[np.ndarray]:
    """Google's ``simplified`` procedure; returns one (n, 2) float array per stroke, in 0..255.

    Aligns the drawing to the top-left (minimum 0), scales it uniformly so the
    longer side spans 255, resamples each stroke at 1 px spacing and simplifies
    it with Ramer–Douglas–Peucker (epsilon 2.0). Empty strokes are dropped; a
    drawing that is a single point ends up at (0, 0).
    """
    pts = _as_point_strokes(strokes)
    if not pts:
        return []
    allp = np.concatenate(pts)
    lo = allp.min(axis=0)
    extent = float((allp.max(axis=0) - lo).max())
    scale = 255.0 / extent if extent > 0 else 1.0
    return [rdp(_resample((p - lo) * scale)) for p in pts]


# --------------------------------------------------------------------------- rendering
def _segments(strokes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment starts, ends and stroke ids; a one-point stroke is a zero-length segment."""
    starts, ends, ids = [], [], []
    for i, p in enumerate(strokes):
        a, b = (p[:1], p[:1]) if len(p) == 1 else (p[:-1], p[1:])
        starts.append(a)
        ends.append(b)
        ids.append(np.full(len(a), i))
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(ids)


def _distance_sq(x, y, seg) -> np.ndarray:
    """Squared distance from points (x, y) to segments ``seg`` (broadcast).

    ``seg`` is (ax, ay, dx, dy, inv_len_sq): start point, direction and the
    inverse squared length (0 for a zero-length segment, which is a point).
    """
    ax, ay, dx, dy, inv = seg
    px, py = x - ax, y - ay
    t = np.clip((px * dx + py * dy) * inv, 0.0, 1.0)
    px -= t * dx
    py -= t * dy
    return px * px + py * py


def _segment_table(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    d = b - a
    dd = (d * d).sum(-1)
    inv = np.divide(1.0, dd, out=np.zeros_like(dd), where=dd > 0)
    return a[:, 0], a[:, 1], d[:, 0], d[:, 1], inv


def _nearby_pixels(a, b, reach, size, table) -> tuple[np.ndarray, np.ndarray]:
    """(pixel index, segment index) pairs whose pixel centre is within ``reach`` of the segment.

    Enumerates only the pixels in each segment's padded bounding box (a ragged
    range built with ``np.repeat``), then keeps those close enough.
    """
    lo = np.clip(np.floor(np.minimum(a, b) - reach - 0.5), 0, size - 1).astype(np.int64)
    hi = np.clip(np.ceil(np.maximum(a, b) + reach - 0.5), 0, size - 1).astype(np.int64)
    w, h = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    seg = np.repeat(np.arange(len(a)), w * h)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(w * h) - w * h, w * h)
    px, py = lo[seg, 0] + k % w[seg], lo[seg, 1] + k // w[seg]
    near = _distance_sq(px + 0.5, py + 0.5, tuple(col[seg] for col in table)) <= reach * reach
    return (py * size + px)[near], seg[near]


def render_simplified(strokes: Sequence[np.ndarray], size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw strokes already in the 0..255 frame (as :func:`simplify_strokes` returns).

    Each stroke is an (n, 2) array of x, y points. Returns a ``size x size``
    uint8 image, 0 background, 255 ink. The bounding box is centred in the
    256 frame; an empty drawing gives an all-zero image.
    """
    image = np.zeros((size, size), dtype=np.uint8)
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    strokes = [s for s in strokes if len(s)]
    if not strokes:
        return image
    allp = np.concatenate(strokes)
    centre_shift = (FRAME - (allp.min(axis=0) + allp.max(axis=0))) / 2.0
    scale = size / (FRAME + 2 * PADDING + LINE_DIAMETER)
    radius = LINE_DIAMETER / 2.0 * scale
    a, b, stroke_id = _segments([(s + centre_shift + PADDING + LINE_DIAMETER / 2) * scale
                                 for s in strokes])
    # Pixels whose centre is within radius + half a diagonal of a segment can be touched.
    table = _segment_table(a, b)
    pix, seg = _nearby_pixels(a, b, radius + 0.7072, size, table)
    cx = (pix % size + 0.5).astype(np.float32)[:, None] + _SAMPLE_OFFSETS[:, 0]
    cy = (pix // size + 0.5).astype(np.float32)[:, None] + _SAMPLE_OFFSETS[:, 1]
    pair_table = tuple(col[seg].astype(np.float32)[:, None] for col in table)
    hit = _distance_sq(cx, cy, pair_table) <= np.float32(radius * radius)
    # Union of samples per (stroke, pixel), then composite strokes like cairo's OVER.
    group, inverse = np.unique(stroke_id[seg] * size * size + pix, return_inverse=True)
    covered = np.zeros((len(group), len(_SAMPLE_OFFSETS)), dtype=bool)
    rows, cols = np.nonzero(hit)
    covered[inverse.reshape(-1)[rows], cols] = True
    clear = np.ones(size * size)
    np.multiply.at(clear, group % (size * size), 1.0 - covered.mean(axis=1))
    image.reshape(-1)[:] = np.floor((1.0 - clear) * 255.0 + 0.5).astype(np.uint8)
    return image


def rasterize_strokes(strokes, *, simplified: bool = False, size: int = IMAGE_SIZE) -> np.ndarray:
    """Turn a drawing into a ``size x size`` uint8 bitmap the way Quick Draw's bitmaps were made.

    ``strokes`` is a list of ``[xs, ys]`` or ``[xs, ys, ts]`` (Google's ndjson
    layout; lists or arrays, any coordinate range, y pointing down). Raw
    strokes are simplified first (:func:`simplify_strokes`); pass
    ``simplified=True`` for drawings from Google's ``simplified`` files, which
    are already in the 0..255 frame. Returns white-on-black pixels (0
    background, 255 ink); an empty drawing gives an all-zero image, a single
    point a round dot.
    """
    if simplified:
        return render_simplified(_as_point_strokes(strokes), size=size)
    return render_simplified(simplify_strokes(strokes), size=size)


# --------------------------------------------------------------------------- ndjson
def _check_drawing(record, path: Path, lineno: int) -> str | None:
    """Why a parsed ndjson record is not a drawing, or None when it is one."""
    if not isinstance(record, dict) or "drawing" not in record:
        return "has no 'drawing' key; expected a Quick Draw object with word, drawing, ..."
    drawing = record["drawing"]
    if not isinstance(drawing, list):
        return "'drawing' is not a list of strokes"
    try:
        clean_strokes(drawing)
    except InputError as exc:
        return str(exc)
    return None


def iter_ndjson(path, *, on_error: str = "raise") -> Iterator[dict]:
    """Yield the drawings of a Quick Draw ``.ndjson`` file (raw or simplified), one dict per line.

    Each dict has Google's keys (``word``, ``countrycode``, ``timestamp``,
    ``recognized``, ``key_id``, ``drawing``). A line that is not valid JSON or
    not a drawing raises :class:`DataError` naming the file and line; with
    ``on_error="skip"`` such lines are skipped and a warning gives their count.
    Blank lines are ignored.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; expected 'raise' or 'skip'")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; expected a Quick Draw .ndjson file")
    skipped: list[int] = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    problem = _check_drawing(record, path, lineno)
                except json.JSONDecodeError as e:
                    problem = f"is not valid JSON ({e.msg} at column {e.colno})"
                if problem is None:
                    yield record
                elif on_error == "skip":
                    skipped.append(lineno)
                else:
                    raise DataError(f"{path}, line {lineno}: {problem}; fix or remove the line, "
                                    "or read with on_error='skip'")
    finally:
        if skipped:
            shown = ", ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else "")
            warnings.warn(f"{path}: skipped {len(skipped)} bad line(s) (line {shown})",
                          stacklevel=2)


def read_ndjson(path, limit: int | None = None, *, on_error: str = "raise") -> list[dict]:
    """The first ``limit`` drawings (all when None) of a Quick Draw ``.ndjson`` file.

    See :func:`iter_ndjson` for the format and error handling.
    """
    out: list[dict] = []
    if limit is not None and limit <= 0:
        return out
    it = iter_ndjson(path, on_error=on_error)
    try:
        for record in it:
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
    finally:
        it.close()
    return out


# --------------------------------------------------------------------------- statistics
def _as_float_batch(images) -> tuple[np.ndarray, bool]:
    a, single = as_image_batch(images, side=None)
    return np.asarray(a, dtype=np.float64), single


def _unbatch(values: np.ndarray, single: bool):
    return values[0] if single else values


def ink(images):
    """Total ink: the sum of pixel values of each image (float, or an (N,) array for a batch)."""
    a, single = _as_float_batch(images)
    return _unbatch(a.sum(axis=(1, 2)), single)


def bbox_size(images, threshold: int = 0):
    """Height and width in pixels of the box around pixels brighter than ``threshold``.

    Returns an array ``[height, width]`` for one image, (N, 2) for a batch;
    an empty image has size ``[0, 0]``.
    """
    a, single = _as_float_batch(images)
    ink_mask = a > threshold
    out = np.zeros((len(a), 2))
    for axis, col in ((2, 0), (1, 1)):  # rows with ink give height, columns width
        lines = ink_mask.any(axis=axis)
        first = lines.argmax(axis=1)
        last = lines.shape[1] - 1 - lines[:, ::-1].argmax(axis=1)
        out[:, col] = np.where(lines.any(axis=1), last - first + 1, 0)
    return _unbatch(out, single)


def stroke_thickness(images):
    """Mean stroke width in pixels: ink area divided by half the ink outline length.

    By the coarea formula, the summed gradient magnitude of a grey image is the
    total length of its level-set outlines; for strokes of width w and length L
    that is about 255 * 2L while the summed ink is about 255 * w * L, so
    ``w = 2 * sum(f) / sum(|grad f|)``. For antialiased 28x28 strokes this is
    the width of the grey profile (physical width plus up to about one pixel of
    antialiasing spread), which is what the comparison of real and rasterised
    bitmaps needs. Gradients are central differences with zero padding. Empty
    images give 0.
    """
    a, single = _as_float_batch(images)
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)))
    gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2.0
    gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2.0
    outline = np.hypot(gx, gy).sum(axis=(1, 2))
    total = a.sum(axis=(1, 2))
    width = np.where(outline > 0, 2.0 * total / np.where(outline > 0, outline, 1.0), 0.0)
    return _unbatch(width, single)
