"""What a drawing is: the one definition every input of QuickSketch goes through.

A drawing is a 28x28 grid of uint8 pixels, 0 = background, 255 = ink (Google's
``numpy_bitmap`` layout: one row of 784 values per drawing). This module holds that
definition and the accepted ways in:

* :data:`IMAGE_SIZE` (28) and :data:`PIXELS` (784), defined once;
* :func:`as_image_batch` (the accepted shapes) and :func:`as_drawings` (the accepted
  values: finite and in range, uint8 ``(N, 784)`` out; README "What QuickSketch promises");
* :func:`clean_strokes`, the one check of strokes (Google's ``[xs, ys(, ts)]`` layout)
  before the rasteriser or the widget use them;
* :func:`is_blank`, the one rule for a blank drawing (:func:`refuse_blank` names them);
* :func:`read_npy_header`, which checks a ``.npy`` file of drawings before it is loaded;
* pictures (:func:`preprocess_image`, :func:`load_image`) and files of drawings
  (:func:`load_inputs`: ``.npy`` rows and pictures), as ``predict`` and ``teach`` read them.

It imports no torch (``predict`` through onnxruntime reads its inputs here) and no
other QuickSketch module but :mod:`errors`.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .errors import DataError, InputError, QuickSketchError, first_line

IMAGE_SIZE = 28  # a drawing is IMAGE_SIZE x IMAGE_SIZE pixels
PIXELS = IMAGE_SIZE * IMAGE_SIZE  # one drawing as a row: 784 uint8 values
# Google's bitmaps were rendered from strokes in a 256-unit frame (the longer side scaled to
# 255) drawn with a 16-unit line and 16 units of padding, reduced to 28x28 (see rasterize.py).
FRAME = 256.0  # Google's drawing frame
LINE_DIAMETER = 16.0  # at FRAME scale
PADDING = 16.0  # at FRAME scale, on each side

# --------------------------------------------------------------------------- shapes and values
def as_image_batch(images, side: int | None = IMAGE_SIZE):
    """Drawings in any shape QuickSketch accepts -- one ``(28, 28)`` or ``(784,)``, a batch
    ``(N, 28, 28)``, ``(N, 784)`` or ``(N, 1, 28, 28)`` -- as a batch ``(N, 28, 28)``, and
    whether one drawing was given. NumPy arrays and torch tensors keep their kind (a view
    where possible; lists become arrays). ``side=None`` accepts any square size. The one
    place that decides these shapes (:func:`as_drawings`, ``data.to_tensor``, plots)."""
    a = images if hasattr(images, "reshape") else np.asarray(images)
    shape = tuple(a.shape)
    single = len(shape) == 1 or (len(shape) == 2 and shape[0] == shape[1]
                                 and shape[1] != (side or IMAGE_SIZE) ** 2)
    n = 1 if single else shape[0]
    per_image = math.prod(shape if single else shape[1:])
    if side is None:
        side = round(math.sqrt(per_image)) if n else IMAGE_SIZE
    if n and per_image != side * side:
        raise InputError(f"images of shape {shape} are not square; "
                         "expected (28, 28), (784,), (N, 784) or (N, 28, 28)")
    return a.reshape(n, side, side), single


VALUES_HINT = ("expected pixel values 0..255 (uint8, or numbers on a 0..1 or 0..255 scale), "
               "0 = background -- see README 'What QuickSketch promises'")


def as_drawings(x, where: str | None = None) -> np.ndarray:
    """Drawings in any shape :func:`as_image_batch` accepts as uint8 ``(N, 784)``, 0 =
    background, 255 = ink: the values ``predict``, ``teach`` and the Python API accept.

    * uint8 values are taken as they are.
    * Other numbers (integers or floats) must be finite and at least 0, and their scale is
      decided by the whole array's largest value: at most 1 is the 0..1 scale (multiplied by
      255), above 1 the 0..255 scale, where a value above 255 is out of range. Values are
      rounded to the nearest integer.

    Anything else -- NaN or infinite values, values out of range (never clipped), booleans,
    text -- raises :class:`InputError` in one line that names ``where`` (a file, by default
    "drawings") and the first wrong row, as ``where[row]``. Blank drawings pass: what to do
    with them is the caller's (:func:`is_blank`).
    """
    try:
        a = np.asarray(as_image_batch(x)[0]).reshape(-1, PIXELS)
    except InputError as exc:
        raise InputError(f"{where}: {exc}" if where else str(exc)) from None
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "iuf":
        raise InputError(f"{where or 'drawings'}: have dtype {a.dtype}; {VALUES_HINT}")
    if a.dtype.kind == "f":
        _refuse_rows(where, a, ~np.isfinite(a).all(axis=1), lambda row: "holds NaN or infinite values")
    scale = 255.0 if a.max(initial=0) <= 1 else 1.0
    outside = (a.min(axis=1, initial=0) < 0) | (a.max(axis=1, initial=0) * scale > 255)
    _refuse_rows(where, a, outside, lambda row: f"holds values {row.min():g}..{row.max():g}, "
                                                 "outside 0..255")
    return np.rint(a * scale).astype(np.uint8)


def _refuse_rows(where: str | None, a: np.ndarray, bad: np.ndarray, what) -> None:
    """InputError naming the first row of ``a`` where ``bad`` holds (``what(row)`` says why)."""
    rows = np.flatnonzero(bad)
    if len(rows):
        more = f" (and {len(rows) - 1} more row{'s' if len(rows) > 2 else ''})" if len(rows) > 1 else ""
        raise InputError(f"{where or 'drawings'}[{rows[0]}]: {what(a[rows[0]])}{more}; {VALUES_HINT}")


# --------------------------------------------------------------------------- blank
MIN_CONTRAST = 64  # ink weaker than this (of 255) against the paper is not a drawing (paper noise)
MIN_INK_PIXELS = 4  # fewer pixels of ink than this is a blank drawing
BLANK = "blank drawing (no ink found); draw something"


def is_blank(drawings):
    """Whether a drawing is blank: fewer than :data:`MIN_INK_PIXELS` (4) pixels with ink of at
    least :data:`MIN_CONTRAST` (64 of 255). The one rule: ``predict`` answers such a drawing
    "blank drawing" instead of a class, the widget says "draw something", ``teach`` and data
    folders refuse it. Faint noise (no pixel at 64) and a lone speck are blank; a real Quick
    Draw drawing never is (README "What QuickSketch promises" has the measurement).

    ``drawings``: any shape and values :func:`as_drawings` accepts. One drawing gives a bool,
    a batch an ``(N,)`` bool array.
    """
    single = as_image_batch(drawings)[1]
    blank = (as_drawings(drawings) >= MIN_CONTRAST).sum(axis=1) < MIN_INK_PIXELS
    return bool(blank[0]) if single else blank


def refuse_blank(drawings, where: str | None = None, error: type[QuickSketchError] = InputError,
                 fix: str = "draw something or remove them") -> None:
    """Raise ``error`` in one line naming ``where`` and the blank rows (:func:`is_blank`) of a
    batch of drawings, if it has any; ``fix`` says what to do."""
    rows = as_drawings(drawings, where)
    blank = np.flatnonzero(np.concatenate([is_blank(rows[i:i + 65536]) for i in range(0, len(rows), 65536)]
                                          or [np.zeros(0, bool)]))  # in parts: memory stays small
    if len(blank):
        shown = ", ".join(map(str, blank[:5])) + (" ..." if len(blank) > 5 else "")
        raise error(f"{where + ': ' if where else ''}{len(blank)} of {len(rows)} drawings are blank "
                    f"(fewer than {MIN_INK_PIXELS} pixels with ink of at least {MIN_CONTRAST}/255): "
                    f"row{'s' if len(blank) > 1 else ''} {shown}; {fix}")


# --------------------------------------------------------------------------- strokes
def clean_strokes(strokes) -> list[np.ndarray]:
    """A drawing's strokes, checked: each non-empty stroke as a ``(k, n)`` float array.

    ``strokes`` is Google's ndjson layout: a list of ``[xs, ys]`` or ``[xs, ys, ts]`` (lists
    or arrays, floats allowed); ``None`` is no strokes. A stroke with fewer than two
    coordinate lists, non-numeric values, lists of unequal length or NaN/infinite values
    raises :class:`InputError` naming the stroke. Empty strokes are dropped. The one stroke
    check of QuickSketch: the widget, the rasteriser and the ndjson reader use it.
    """
    out = []
    for i, stroke in enumerate(strokes if strokes is not None else []):
        if len(stroke) < 2:
            raise InputError(f"stroke {i} has {len(stroke)} coordinate lists; "
                             "expected [xs, ys] or [xs, ys, ts]")
        try:
            lists = [np.asarray(c, dtype=np.float64).reshape(-1) for c in stroke]
        except (TypeError, ValueError) as e:
            raise InputError(f"stroke {i} has non-numeric coordinates ({e}); "
                             "expected [xs, ys] lists of numbers") from None
        if len({len(c) for c in lists}) != 1:
            raise InputError(f"stroke {i} has {lists[0].size} x values and {lists[1].size} y values"
                             + (f" and {lists[2].size} times" if len(lists) > 2 else "")
                             + "; expected equal lengths")
        points = np.stack(lists)
        if not np.isfinite(points).all():
            raise InputError(f"stroke {i} contains NaN or infinite coordinates; expected finite numbers")
        if points.shape[1]:
            out.append(points)
    return out


# --------------------------------------------------------------------------- .npy files
NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000  # numpy's own limit for a header it reads without trusting the file
NPY_FORMAT_HINT = "expected (N, 784) uint8 -- see README 'Data format'"


class NpyHeader(NamedTuple):
    """What a ``.npy`` file's header says: shape, dtype, memory order and where the data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def parse_npy_header(data: bytes) -> NpyHeader | int:
    """The header of a ``.npy`` file from its first bytes.

    Returns the number of bytes needed instead when ``data`` is too short to hold the
    whole header; raises :class:`ValueError` (one line, what was found) when it is not a
    ``.npy`` file or its header is longer than :data:`MAX_HEADER_BYTES`.
    """
    if not data:
        raise ValueError("it is empty (0 bytes)")
    if len(data) < 12 and NPY_MAGIC.startswith(data[:6]):
        return 12
    if data[:6] != NPY_MAGIC:
        return _not_npy(data)
    major = data[6]
    if major not in (1, 2, 3):
        raise ValueError(f"unsupported .npy format version {major}")
    offset = 10 + struct.unpack("<H", data[8:10])[0] if major == 1 else 12 + struct.unpack("<I", data[8:12])[0]
    if offset - 12 > MAX_HEADER_BYTES:
        raise ValueError(f"its .npy header claims {offset:,} bytes; at most {MAX_HEADER_BYTES:,} are read")
    if len(data) < offset:
        return offset
    buf = io.BytesIO(data[:offset])
    np.lib.format.read_magic(buf)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = read_header(buf)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"its .npy header is malformed ({first_line(exc)})") from None
    if dtype.hasobject:
        raise ValueError("it holds Python objects (pickled data), which QuickSketch never loads")
    return NpyHeader(tuple(shape), np.dtype(dtype), bool(fortran), offset)


def _not_npy(data: bytes) -> int:
    start = data[:16]
    kind = "text" if all(32 <= b < 127 or b in b"\t\r\n" for b in start) else "binary data"
    if start.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        kind = "an HTML/XML page"
    raise ValueError(f"it is {kind} starting with {start[:12]!r}, not a .npy file (those start with {NPY_MAGIC!r})")


def read_npy_header(path: str | os.PathLike, hint: str = NPY_FORMAT_HINT) -> NpyHeader:
    """Read and check a ``.npy`` file's header without loading its data.

    Raises :class:`DataError` naming the file (and ending with ``hint``, what was expected)
    when it is not a ``.npy`` file, holds objects, or its header promises more (or fewer)
    bytes than the file has -- so a header claiming 10^12 rows is refused before anything
    is allocated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(12)
            parsed = parse_npy_header(data)
            if isinstance(parsed, int):
                data += f.read(parsed - len(data))
                parsed = parse_npy_header(data)
            size = os.fstat(f.fileno()).st_size
    except ValueError as exc:
        raise DataError(f"{path}: {exc}; {hint}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if isinstance(parsed, int):
        raise DataError(f"{path}: ends inside its .npy header ({size} bytes); it is truncated -- "
                        "re-download or regenerate it")
    if size - parsed.offset != parsed.data_bytes:
        raise DataError(f"{path}: its header promises {parsed.data_bytes:,} bytes of {parsed.dtype} "
                        f"{parsed.shape} but the file holds {size - parsed.offset:,}; it is truncated or "
                        "damaged -- re-download or regenerate it")
    return parsed


# --------------------------------------------------------------------------- pictures
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# In a Quick Draw bitmap the ink (a 255-unit drawing plus the 16-unit line) spans 271 of the
# 304-unit frame that is reduced to 28x28 (see rasterize.py): about 25 of 28 pixels.
CONTENT_FRACTION = (FRAME - 1 + LINE_DIAMETER) / (FRAME + 2 * PADDING + LINE_DIAMETER)
MAX_SIDE = 1024  # pictures are reduced to at most this many pixels a side before any float work
MAX_FRAMES = 64  # an animated picture: the frames searched for ink


def preprocess_image(pixels: np.ndarray, content_fraction: float = CONTENT_FRACTION) -> np.ndarray:
    """A grayscale picture of a drawing -> 28x28 uint8 the Quick Draw way.

    Dark-on-light pictures are inverted (decided by the border, which is
    background), faint noise is dropped, the drawing is cropped to its bounding
    box, centred in a square frame so it spans ``content_fraction`` of it, and
    area-averaged down to 28x28 with its brightest pixel at 255. A blank or
    near-blank picture (no ink at least :data:`MIN_CONTRAST` levels from the paper,
    or ink on fewer than :data:`MIN_INK_PIXELS` pixels, as paper noise) gives all
    zeros: :func:`is_blank` says so instead of guessing a class.
    """
    from PIL import Image

    g = np.asarray(pixels, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 2:
        raise InputError(f"picture has shape {g.shape}; expected a 2-D grayscale image at least 2x2")
    g = g / max(float(g.max()), 1.0) * 255.0 if g.max() > 255 else g
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    ink = 255.0 - g if np.median(border) > 127 else g
    ink = ink - np.median(border if np.median(border) <= 127 else 255.0 - border)  # the paper is 0
    strongest = float(ink.max())
    ink = np.where(ink > max(0.1 * strongest, MIN_CONTRAST / 2), ink, 0.0)
    ys, xs = np.nonzero(ink)
    if strongest < MIN_CONTRAST or len(xs) < max(MIN_INK_PIXELS, int(2e-5 * ink.size)):
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    # a square window around the ink's bounding box, centred on it, the ink spanning content_fraction
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / content_fraction
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    pad = int(np.ceil(side))
    padded = np.pad(ink, pad).astype(np.float32)
    box = (cx + pad - side / 2, cy + pad - side / 2, cx + pad + side / 2, cy + pad + side / 2)
    small = np.asarray(Image.fromarray(padded, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX, box=box))
    small = small / max(float(small.max()), 1e-6) * 255.0
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/... drawing and preprocess it to 28x28 uint8 (zeros when blank).

    Memory stays bounded: JPEGs are decoded at a reduced scale, other pictures are
    reduced to at most :data:`MAX_SIDE` a side right after decoding (one byte per pixel
    for 1-bit, grayscale and palette pictures, up to five for colour and 16-bit ones),
    and pictures above Pillow's limit (``Image.MAX_IMAGE_PIXELS``, 89 megapixels) are
    refused before decoding. A picture is the same drawing however it is stored:
    transparent pixels are paper whatever colour they hold (:func:`_gray_picture`),
    16-bit pictures keep their full range, and an animated picture is read from its first
    frame with ink (of the first :data:`MAX_FRAMES`; a warning names it when it is not
    the first).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_picture_size(path, im)
                im.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                frames = min(getattr(im, "n_frames", 1), MAX_FRAMES)
                for frame in range(frames):
                    im.seek(frame)  # an animated GIF/PNG/WebP: each frame as shown, earlier ones under it
                    drawing = _preprocess(path, _gray_picture(im))
                    if not is_blank(drawing):
                        break
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: picture too large ({first_line(exc)}); QuickSketch reads pictures up to "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (Pillow's limit) -- scale it down") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}); "
                         "expected a PNG/JPEG drawing or a .npy of (N, 784) uint8 rows") from None
    if frames > 1 and frame > 0 and not is_blank(drawing):
        blank = "frame 0 is" if frame == 1 else f"frames 0..{frame - 1} are"
        warnings.warn(f"{path}: {blank} blank in this animation; read frame {frame}, the first with ink")
    return drawing


def _preprocess(path, gray: np.ndarray) -> np.ndarray:
    try:
        return preprocess_image(gray)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _check_picture_size(path, im) -> None:
    from PIL import Image

    pixels = im.width * im.height
    if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
        raise InputError(f"{path}: picture is {im.width}x{im.height} ({pixels / 1e6:.0f} megapixels); "
                         f"QuickSketch reads pictures up to {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                         "(Pillow's limit) -- scale it down")
    if min(im.width, im.height) < 2:
        raise InputError(f"{path}: picture is {im.width}x{im.height}; expected a drawing at least 2x2 pixels")


def _gray_picture(im) -> np.ndarray:
    """A decoded picture -> uint8 grayscale of at most MAX_SIDE a side, light or dark paper.

    Transparent pixels are paper, whatever colour they hold. When the border is mostly
    transparent (strokes on a transparent background): with partial opacity (an alpha
    channel that smooths the strokes' edges) the opacity is the ink; with only opaque and
    transparent pixels (a palette's transparent colour, a cut-out) the smoothing is in
    the colours, so the opaque pixels are kept and the transparent ones become paper of
    the opposite shade (white under dark strokes, black under light ones). Otherwise the
    picture is laid on white paper.
    """
    from PIL import Image

    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # the palette's transparent colour(s) become alpha 0
    elif im.mode in ("P", "1"):
        im = im.convert("L")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")
    elif im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    factor = -(-max(im.size) // MAX_SIDE)
    if factor > 1:
        im = im.reduce(factor)
    if im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = max(float(a.max()), 1.0)
        return np.clip(np.rint(a * (255.0 / top if top > 255 else 1.0)), 0, 255).astype(np.uint8)
    if "A" not in im.mode:
        return np.asarray(im.convert("L"))
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() == 255:
        return np.asarray(im.convert("L"))
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    if np.median(border) < 128:  # strokes on a transparent background
        opaque = alpha == 255
        if not ((alpha == 0) | opaque).all():
            return alpha  # partial opacity: the opacity is the ink
        gray = np.asarray(im.convert("RGB").convert("L"))
        paper = 255 if not opaque.any() or np.median(gray[opaque]) < 128 else 0
        return np.where(opaque, gray, np.uint8(paper))
    paper = Image.new(im.mode, im.size, (255,) * len(im.mode))
    return np.asarray(Image.alpha_composite(paper.convert("RGBA"), im.convert("RGBA")).convert("L"))


# --------------------------------------------------------------------------- files of drawings
PREDICT_HINT = "expected (N, 784) uint8, drawings to predict -- see README 'Data format'"


def load_inputs(paths: Sequence[str | os.PathLike]) -> tuple[list[str], np.ndarray]:
    """Names and uint8 ``(N, 784)`` drawings from ``.npy`` files and images."""
    names, rows = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        if path.suffix.lower() == ".npy":
            try:
                read_npy_header(path, PREDICT_HINT)  # the shared check: a .npy whose size fits its header
                arr = np.load(path, allow_pickle=False)
            except DataError as exc:
                raise InputError(str(exc)) from None
            except (ValueError, OSError, EOFError) as exc:
                raise InputError(f"{path}: not a readable .npy file ({first_line(exc)}); "
                                 "expected (N, 784) uint8 rows") from None
            drawings = as_drawings(arr, str(path))  # the input contract, naming the file and row
            if len(drawings) == 0:
                raise InputError(f"{path}: holds 0 drawings; expected at least one (N, 784) row")
            names += [f"{path.name}[{i}]" for i in range(len(drawings))]
            rows.append(drawings)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            names.append(path.name)
            rows.append(load_image(path).reshape(1, PIXELS))
        else:
            raise InputError(f"{path}: unsupported input '{path.suffix}'; "
                             "give .npy rows or a PNG/JPEG drawing")
    return names, np.concatenate(rows) if rows else np.zeros((0, PIXELS), np.uint8)
