"""What a drawing is: the one definition every input of QuickSketch goes through.

A drawing is a 28x28 grid of uint8 pixels, 0 = background, 255 = ink (Google's
``numpy_bitmap`` layout: one row of 784 values per drawing). This module holds that
definition and the accepted ways in:

* :data:`IMAGE_SIZE` (28) and :data:`PIXELS` (784), defined once;
* :func:`as_image_batch` (the accepted shapes) and :func:`as_drawings` (the accepted
  values: uint8 ``(N, 784)`` out);
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

from .errors import DataError, InputError, QuickSketchError

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


def as_drawings(x) -> np.ndarray:
    """Any of (28,28), (N,28,28), (784,), (N,784) -> uint8 (N, 784), 0 = background."""
    a = np.asarray(as_image_batch(x)[0]).reshape(-1, PIXELS)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or np.isnan(a).any():
            raise InputError(f"drawing array of dtype {a.dtype} has non-numeric or NaN values")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] are scaled up
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    return a


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
    rows = as_drawings(drawings)
    blank = np.flatnonzero(is_blank(rows))
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
        raise ValueError(f"its .npy header is malformed ({_short(exc)})") from None
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


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


# --------------------------------------------------------------------------- pictures
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# In a Quick Draw bitmap the ink (a 255-unit drawing plus the 16-unit line) spans 271 of the
# 304-unit frame that is reduced to 28x28 (see rasterize.py): about 25 of 28 pixels.
CONTENT_FRACTION = (FRAME - 1 + LINE_DIAMETER) / (FRAME + 2 * PADDING + LINE_DIAMETER)
MAX_SIDE = 1024  # pictures are reduced to at most this many pixels a side before any float work


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
    refused before decoding. Transparency is read as the drawing's paper: strokes of any
    colour on a transparent background are ink; 16-bit pictures keep their full range.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_picture_size(path, im)
                im.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                gray = _gray_picture(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: picture too large ({_short(exc)}); QuickSketch reads pictures up to "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (Pillow's limit) -- scale it down") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}); "
                         "expected a PNG/JPEG drawing or a .npy of (N, 784) uint8 rows") from None
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

    With transparency, the opacity is the picture (ink = opaque, paper = transparent)
    when the border is mostly transparent; otherwise it is laid on white paper.
    """
    from PIL import Image

    if im.mode == "P":
        im = im.convert("LA" if "transparency" in im.info else "L")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")
    elif im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
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
    if np.median(border) < 128:  # strokes on a transparent background: opacity is the ink
        return alpha
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
                raise InputError(f"{path}: not a readable .npy file ({_short(exc)}); "
                                 "expected (N, 784) uint8 rows") from None
            try:
                drawings = as_drawings(arr)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
            names += [f"{path.name}[{i}]" for i in range(len(drawings))]
            rows.append(drawings)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            names.append(path.name)
            rows.append(load_image(path).reshape(1, PIXELS))
        else:
            raise InputError(f"{path}: unsupported input '{path.suffix}'; "
                             "give .npy rows or a PNG/JPEG drawing")
    return names, np.concatenate(rows) if rows else np.zeros((0, PIXELS), np.uint8)
