"""The data layer: folders of ``<class>.npy`` files, splits and batches.

A data folder holds one ``<class>.npy`` per class, each ``(N, 784)`` uint8
(Google's ``numpy_bitmap`` format: 0 = background, 255 = ink). Files are read
memory-mapped, labels come from the sorted file names, and drawings stay uint8
until a batch is built.

Two ways to read drawings:

* :class:`QuickDrawNPY` -- a per-sample dataset (the original project's class),
  returning ``(1, 28, 28)`` normalised tensors.
* :class:`BatchLoader` -- the fast path used by the trainer: whole uint8
  arrays sliced per batch, normalised in one vectorised step (on the GPU when
  training there), no per-sample Python.

Importing it imports no torch (the functions that make tensors import it when called), so
reading files and :func:`normalize_rows` serve ``predict`` through onnxruntime alone.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from .errors import DataError, first_line
from .files import check_output_folder, save_npy_atomic, shown_path
from .locations import DataSource, data_source
from .rasterize import as_image_batch

if TYPE_CHECKING:  # the tensors of annotations; torch itself is imported where tensors are made
    import torch

IMAGE_SIZE = 28
PIXELS = IMAGE_SIZE * IMAGE_SIZE
NORM_MEAN = 0.5
NORM_STD = 0.5
DATA_FORMAT_HINT = "expected (N, 784) uint8, one <class>.npy per class -- see README 'Data format'"


# --------------------------------------------------------------------------- files
def list_class_files(root: str | os.PathLike) -> dict[str, Path]:
    """Map class name -> ``.npy`` path for a data folder, sorted by name.

    Hidden files (``.foo.npy``), and entries named ``*.npy`` that are not regular files
    (a folder, a FIFO, a broken link or a symlink loop), are skipped with a warning that
    names them -- a class never disappears silently. Class names that differ only in case
    are an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found; {DATA_FORMAT_HINT}")
    named = sorted(p for p in root.iterdir() if p.suffix == ".npy")
    odd = [f"{p.name} ({_not_a_file(p)})" for p in named if _not_a_file(p)]
    if odd:
        warnings.warn(f"{root}: skipped {len(odd)} entr{'y' if len(odd) == 1 else 'ies'} that "
                      f"{'is' if len(odd) == 1 else 'are'} not a regular file: {', '.join(odd)}")
    files = [p for p in named if not _not_a_file(p)]
    hidden = [p for p in files if p.name.startswith(".")]
    if hidden:
        warnings.warn(f"{root}: skipped {len(hidden)} hidden file(s): {', '.join(p.name for p in hidden)}")
    files = [p for p in files if not p.name.startswith(".")]
    if not files:
        raise DataError(f"{root}: no .npy class files found; {DATA_FORMAT_HINT}")
    seen: dict[str, Path] = {}
    for p in files:
        twin = seen.get(p.stem.lower())
        if twin is not None:
            raise DataError(f"{root}: '{twin.name}' and '{p.name}' differ only in case; "
                            "rename or remove one so each class has one file")
        seen[p.stem.lower()] = p
    return {p.stem: p for p in files}


def _not_a_file(path: Path) -> str:
    """Why ``path`` is not a regular file ("" when it is one)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return "a symlink loop" if exc.errno == errno.ELOOP else "a broken link"
    if stat.S_ISREG(mode):
        return ""
    return "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"


def select_class_files(root: str | os.PathLike, classes: Sequence[str] | None = None) -> dict[str, Path]:
    """:func:`list_class_files`, keeping only ``classes`` when given (in the same sorted
    file-name order, so labels never depend on the order ``classes`` is given in)."""
    files = list_class_files(root)
    if classes is None:
        return files
    missing = [c for c in classes if c not in files]
    if missing:
        raise DataError(f"{root}: no file for class(es) {', '.join(map(repr, missing))}; "
                        f"available: {', '.join(files)}")
    wanted = set(classes)
    return {c: path for c, path in files.items() if c in wanted}


class NpyHeader(NamedTuple):
    """What a ``.npy`` file's header says: shape, dtype, memory order and where the data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000  # numpy's own limit for a header it reads without trusting the file


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


def read_npy_header(path: str | os.PathLike) -> NpyHeader:
    """Read and check a ``.npy`` file's header without loading its data.

    Raises :class:`DataError` naming the file when it is not a ``.npy`` file, holds
    objects, or its header promises more (or fewer) bytes than the file has -- so a
    header claiming 10^12 rows is refused before anything is allocated.
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
        raise DataError(f"{path}: {exc}; {DATA_FORMAT_HINT}") from None
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


def check_bitmap_header(where: str | os.PathLike, header: NpyHeader) -> None:
    """Raise :class:`DataError` unless ``header`` is Quick Draw bitmaps: (N, 784) uint8, N > 0."""
    if len(header.shape) != 2 or header.shape[1] != PIXELS or header.fortran_order:
        raise DataError(f"{where}: has shape {header.shape}{' (Fortran order)' if header.fortran_order else ''}; "
                        f"{DATA_FORMAT_HINT}")
    if header.dtype != np.uint8:
        raise DataError(f"{where}: has dtype {header.dtype}; {DATA_FORMAT_HINT}")
    if header.shape[0] == 0:
        raise DataError(f"{where}: holds 0 drawings; remove the file or add drawings")


def open_class_file(path: str | os.PathLike) -> np.ndarray:
    """Memory-map one class file after checking it is ``(N, 784)`` uint8 with N > 0.

    The one check of Quick Draw bitmap files (:func:`read_npy_header` then
    :func:`check_bitmap_header`), shared by the data folder, ``download`` and ``predict``.
    """
    path = Path(path)
    header = read_npy_header(path)
    if len(header.shape) == 2 and header.shape[1] == PIXELS and header.dtype != np.uint8 \
            and header.dtype.kind in "biuf" and not header.fortran_order:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        raise DataError(f"{path}: {_describe_bad_dtype(arr)}; {DATA_FORMAT_HINT} "
                        "(convert with np.clip(a, 0, 255).astype(np.uint8) after checking the values)")
    check_bitmap_header(path, header)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({first_line(exc)}); "
                        "re-download or regenerate it") from None


def _describe_bad_dtype(arr: np.ndarray) -> str:
    desc = f"has dtype {arr.dtype}"
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        desc += f" with {int(np.isnan(arr).sum())} NaN value(s)"
    elif np.issubdtype(arr.dtype, np.number) and arr.size:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        desc += f" with values {lo:g}..{hi:g}" + (" (outside 0..255)" if lo < 0 or hi > 255 else "")
    return desc


# --------------------------------------------------------------------------- folders
@dataclass
class SketchData:
    """Drawings of a data folder: uint8 images ``(N, 784)``, int64 labels, class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    root: Path | None = None
    synthetic: bool = False
    per_class: int | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.classes)).tolist()

    def describe(self) -> str:
        kind = "SYNTHETIC doodles (not Quick Draw)" if self.synthetic else "Quick Draw drawings"
        where = f" from {shown_path(self.root)}" if self.root else ""
        return f"{len(self):,} {kind} in {len(self.classes)} classes{where}"

    def fingerprint(self) -> dict:
        """What identifies this data for a checkpoint's recorded split: classes, counts and
        the SHA-256 of each class's drawings (:func:`rows_digest`), in class order."""
        return {"classes": list(self.classes), "counts": self.counts, "per_class": self.per_class,
                "sha256": self.digests}

    @cached_property
    def digests(self) -> list[str]:
        """:func:`rows_digest` of each class's drawings (computed once)."""
        out = []
        for c in range(len(self.classes)):
            where = np.flatnonzero(np.asarray(self.labels) == c)
            contiguous = len(where) and where[-1] - where[0] + 1 == len(where)
            rows = self.images[where[0]:where[-1] + 1] if contiguous else self.images[where]
            out.append(rows_digest(rows))
        return out

    def subset(self, indices: np.ndarray) -> "SketchData":
        idx = np.asarray(indices)
        return SketchData(self.images[idx], self.labels[idx], self.classes, self.root,
                          self.synthetic, self.per_class)


def load_folder(root: str | os.PathLike, classes: Sequence[str] | None = None,
                per_class: int | None = None, max_bytes: int | None = None,
                mapped: bool = False, min_classes: int = 2) -> SketchData:
    """Load a data folder into memory, reading at most ``per_class`` rows per class.

    Files are memory-mapped, so with ``per_class`` only those rows are read, even
    from full-size Quick Draw files of 100k+ drawings. ``classes`` picks a subset
    (names as in the file names). ``max_bytes`` (default: 60% of RAM) guards
    against reading a huge folder whole; pass ``per_class`` to stay under it.
    ``mapped=True`` reads nothing yet: ``images`` is a :class:`MappedImages` that
    reads rows from the files when indexed (each data-parallel rank reads its shard).
    ``min_classes``: 2 for training a classifier; evaluating one may use 1.
    """
    root = Path(root)
    files = select_class_files(root, classes)
    if len(files) < min_classes:
        raise DataError(f"{root}: found only {len(files)} class ({', '.join(files)}); "
                        "a classifier needs at least 2 class files")
    if per_class is not None and per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    arrays = {name: open_class_file(path) for name, path in files.items()}
    rows = {n: len(a) if per_class is None else min(per_class, len(a)) for n, a in arrays.items()}
    labels = np.repeat(np.arange(len(rows), dtype=np.int64), list(rows.values()))
    if mapped:
        images = MappedImages(list(arrays.values()), list(rows.values()))
        return SketchData(images, labels, list(arrays), root, is_synthetic(root), per_class)
    total = sum(rows.values()) * PIXELS
    limit = max_bytes if max_bytes is not None else int(0.6 * _total_memory())
    if total > limit:
        raise DataError(f"{root}: {sum(rows.values()):,} drawings need {total / 2**30:.1f} GiB, "
                        f"more than {limit / 2**30:.1f} GiB allowed; pass --per-class N to cap each class")
    images = np.empty((sum(rows.values()), PIXELS), dtype=np.uint8)
    start = 0
    for name, arr in arrays.items():
        read_rows(arr, images[start:start + rows[name]])
        start += rows[name]
    return SketchData(images, labels, list(arrays), root, is_synthetic(root), per_class)


class MappedImages:
    """The drawings of several memory-mapped class files as one ``(N, 784)`` array,
    read from disk only when indexed (``images[indices]`` returns a NumPy array)."""

    def __init__(self, arrays: Sequence[np.ndarray], rows: Sequence[int]):
        self.arrays = list(arrays)
        self.offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self.shape = (int(self.offsets[-1]), PIXELS)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        idx = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        flat = np.atleast_1d(idx)
        out = np.empty((len(flat), PIXELS), dtype=np.uint8)
        owner = np.searchsorted(self.offsets, flat, side="right") - 1
        for c in np.unique(owner):
            mask = owner == c
            out[mask] = self.arrays[c][flat[mask] - self.offsets[c]]
        return out[0] if idx.ndim == 0 else out


def rows_digest(rows: np.ndarray) -> str:
    """SHA-256 of uint8 drawings ``(N, 784)`` (their bytes in row order): the same
    drawings give the same digest in any folder, on any machine."""
    h = hashlib.sha256()
    for start in range(0, len(rows), 65536):
        h.update(np.ascontiguousarray(rows[start:start + 65536], dtype=np.uint8).data)
    return h.hexdigest()


ROW_HASH = "blake2b-32"  # what :func:`row_hashes` computes (recorded beside the numbers)


def row_hashes(rows, index: np.ndarray | None = None) -> np.ndarray:
    """A 32-bit fingerprint of each uint8 drawing ``(N, 784)`` (or of ``rows[index]``): the
    first 4 bytes of the BLAKE2b digest of its 784 bytes, as ``uint32``. The same drawing
    gives the same number in any folder, file or order, on any machine; two different
    drawings share one with probability 2**-32. ``rows`` may be any array-like (a memory
    map, :class:`MappedImages`): it is read 65,536 rows at a time."""
    n = len(rows) if index is None else len(index)
    out = np.empty(n, dtype=np.uint32)
    for start in range(0, n, 65536):
        part = slice(start, start + 65536)
        chunk = rows[part] if index is None else rows[np.asarray(index)[part]]
        chunk = np.ascontiguousarray(chunk, dtype=np.uint8).reshape(-1, PIXELS)
        digests = b"".join(hashlib.blake2b(row, digest_size=4).digest() for row in chunk)
        out[start:start + len(chunk)] = np.frombuffer(digests, dtype=">u4")
    return out


@dataclass(frozen=True)
class RowFingerprints:
    """The drawings a model was trained on, one 32-bit fingerprint each (:func:`row_hashes`),
    sorted and without repeats: 4 bytes a drawing (36,009 training drawings: 144 kB).

    A drawing it was not trained on matches one of ``M`` fingerprints by chance with
    probability about ``M / 2**32`` (:meth:`false_match_rate`): 1 in 119,000 for M = 36,009,
    1 in 45,600 for M = 94,230. Stored in a checkpoint as ``to_dict()`` (an int32 tensor:
    checkpoints hold only tensors, numbers and strings)."""

    values: np.ndarray  # sorted unique uint32

    @classmethod
    def of(cls, rows, index: np.ndarray | None = None) -> "RowFingerprints":
        """The fingerprints of ``rows`` (or of ``rows[index]``, read a chunk at a time)."""
        return cls(np.unique(row_hashes(rows, index)))

    def __len__(self) -> int:
        return len(self.values)

    def union(self, other: "RowFingerprints") -> "RowFingerprints":
        return RowFingerprints(np.union1d(self.values, other.values).astype(np.uint32))

    def contains(self, rows) -> np.ndarray:
        """Per drawing of ``rows``, whether its fingerprint is one of these."""
        h = row_hashes(rows)
        if not len(self.values):
            return np.zeros(len(h), dtype=bool)
        at = np.minimum(np.searchsorted(self.values, h), len(self.values) - 1)
        return self.values[at] == h

    def false_match_rate(self) -> float:
        """The chance that a drawing not among them matches one: 1 - (1 - 2**-32)**M."""
        return float(-np.expm1(len(self.values) * np.log1p(-2.0 ** -32)))

    def to_dict(self) -> dict:
        import torch

        return {"hash": ROW_HASH, "values": torch.from_numpy(self.values.view(np.int32).copy())}

    @classmethod
    def from_dict(cls, d: dict) -> "RowFingerprints":
        """From :meth:`to_dict`'s form; ValueError (one line) for anything else."""
        import torch

        if not isinstance(d, dict) or d.get("hash") != ROW_HASH:
            found = d.get("hash") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"its per-drawing fingerprint is not {ROW_HASH!r} (found {found!r})")
        values = d.get("values")
        if not isinstance(values, torch.Tensor) or values.dtype != torch.int32 or values.dim() != 1:
            raise ValueError("its per-drawing fingerprint is not a 1-D int32 tensor")
        u = values.numpy().view(np.uint32)
        if len(u) > 1 and not (u[1:] > u[:-1]).all():
            raise ValueError("its per-drawing fingerprint is not sorted without repeats")
        return cls(u.copy())


def read_rows(arr: np.ndarray, out: np.ndarray) -> None:
    """Copy the first ``len(out)`` rows of a memory-mapped class file into ``out``.

    A plain sequential file read for C-ordered files: unlike copying from the
    memory map, it leaves no mapped pages counted in the process's memory.
    """
    if isinstance(arr, np.memmap) and arr.filename and arr.flags.c_contiguous:
        with open(arr.filename, "rb") as f:
            f.seek(arr.offset)
            if f.readinto(memoryview(out).cast("B")) == out.nbytes:
                return
    out[:] = arr[:len(out)]


def find_data(explicit: str | os.PathLike | None = None, *, generate: bool = True,
              per_class: int = 2000) -> DataSource:
    """The data folder to use (:func:`~quicksketch_lib.locations.data_source`: ``explicit``,
    ``$QUICKSKETCH_DATA``, ``data/quickdraw``, else the offline default ``data/synthetic``),
    with the offline default generated on first use when ``generate``."""
    source = data_source(explicit)
    if source.kind == "offline-default" and generate and not is_synthetic(source.path):
        from .doodles import generate_doodles

        generate_doodles(source.path, per_class=per_class, seed=0)
    return source


def is_synthetic(root: str | os.PathLike) -> bool:
    """True for folders made by the procedural doodle generator (offline default)."""
    return (Path(root) / "SYNTHETIC.txt").exists()


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


# --------------------------------------------------------------------------- splits
def stratified_split(labels: np.ndarray, val_fraction: float = 0.1,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, per-class split: ``val_fraction`` of every class is held out.

    Returns sorted ``(train_idx, val_idx)``; the same labels and seed always give
    the same split.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_val = max(1, int(round(len(idx) * val_fraction))) if len(idx) > 1 else 0
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def shard_indices(indices: np.ndarray, labels: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s share of ``indices`` (sorted) for data-parallel training.

    Each class's indices are cut into ``world`` contiguous runs and a rank takes
    run ``rank`` of every class: every rank sees every class (so BatchNorm
    statistics agree), reads contiguous rows of each memory-mapped file, and all
    ranks get the same count (trimmed to the smallest) so they step together.
    """
    indices, labels = np.asarray(indices), np.asarray(labels)
    per_rank = [[] for _ in range(world)]
    for c in np.unique(labels[indices]):
        for r, run in enumerate(np.array_split(indices[labels[indices] == c], world)):
            per_rank[r].append(run)
    shards = [np.concatenate(parts) for parts in per_rank]
    n = min(len(s) for s in shards)
    mine = shards[rank]
    if len(mine) > n:  # drop a seeded random few so every rank has n
        mine = mine[np.random.default_rng(0).permutation(len(mine))[:n]]
    return np.sort(mine)


# --------------------------------------------------------------------------- samples and batches
def normalize(x: torch.Tensor) -> torch.Tensor:
    """Normalize(mean=0.5, std=0.5) of images already scaled to [0, 1] (a tensor or an array)."""
    return (x - NORM_MEAN) / NORM_STD


def normalize_rows(rows: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 784)`` -> normalised float32 ``(N, 1, 28, 28)``, equal to
    :func:`normalize_batch` without torch (what onnxruntime is given)."""
    x = np.asarray(rows).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32) / np.float32(255.0)
    return normalize(x)


def to_tensor(rows: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 784)`` or ``(N, 28, 28)`` -> float ``(N, 1, 28, 28)`` in [0, 1] (one
    drawing, ``(784,)`` or ``(28, 28)``: ``(1, 28, 28)``)."""
    import torch

    batch, single = as_image_batch(torch.as_tensor(rows))
    x = batch[:, None].to(torch.float32) / 255.0
    return x[0] if single else x


def normalize_batch(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 784)`` -> normalised float ``(B, 1, 28, 28)``: ``x / 127.5 - 1``."""
    return normalize(to_tensor(images_u8))


class QuickDrawNPY:
    """Per-sample Dataset over a data folder (the original project's interface): a map-style
    dataset (``len`` and ``[i]``), which ``DataLoader`` and ``random_split`` take as they are.

    ``dataset[i]`` is ``(image, label)`` with ``image`` a ``(1, 28, 28)`` float
    tensor: pixels scaled to [0, 1] then ``transform`` (default: Normalize(0.5, 0.5)).
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = normalize,
                 classes: Sequence[str] | None = None, per_class: int | None = None):
        self.data = load_folder(root, classes=classes, per_class=per_class)
        self.classes = self.data.classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import torch

        x = torch.from_numpy(self.data.images[i].reshape(1, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32) / 255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.data.labels[i])


@dataclass
class BatchLoader:
    """The fast batch path: uint8 drawings sliced per batch, normalised in one step.

    The uint8 tensor lives on the training device when it fits (e.g. the whole
    dataset on a GPU); otherwise in CPU memory, each batch gathered into pinned
    memory and copied without blocking. Each epoch's order comes from ``seed`` and the epoch number, so a
    resumed run sees exactly the batches an uninterrupted one would.
    """

    images: np.ndarray | torch.Tensor
    labels: np.ndarray | torch.Tensor
    batch_size: int = 256
    shuffle: bool = False
    seed: int = 0
    device: torch.device | str = "cpu"
    drop_last: bool = False
    channels_last: bool = False
    max_batches: int | None = None
    epoch: int = field(default=0, init=False)

    def __post_init__(self):
        import torch

        self.device = torch.device(self.device)
        self.images = torch.as_tensor(self.images)
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.device.type == "cuda" and _fits_on(self.device, self.images.numel()):
            self.images, self.labels = self.images.to(self.device), self.labels.to(self.device)
        # otherwise each batch is gathered into pinned memory in __iter__: pinning the whole
        # array would copy it (twice the RAM), and a gathered slice of it is not pinned anyway

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.labels)
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return batches if self.max_batches is None else min(batches, self.max_batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.images.device)
        else:
            order = None
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            idx = order[sl] if order is not None else sl
            x, y = self.images[idx], self.labels[idx]
            if x.device.type == "cpu" and self.device.type == "cuda":
                x, y = x.pin_memory(), y.pin_memory()  # so the copies below do not block
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            x = normalize_batch(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y


def _fits_on(device: torch.device, nbytes: int, share: float = 0.5) -> bool:
    import torch

    try:
        free, _ = torch.cuda.mem_get_info(device)
    except Exception:  # pragma: no cover - only on odd CUDA setups
        return False
    return nbytes < share * free


# --------------------------------------------------------------------------- subsets
def make_subset(src: str | os.PathLike, dst: str | os.PathLike, per_class: int,
                classes: Sequence[str] | None = None, seed: int = 0) -> dict[str, int]:
    """Write a per-class subset of ``src`` to ``dst``: ``per_class`` drawings per class.

    Rows are a seeded random sample (sorted, so reads are sequential) taken from
    memory-mapped files: a 100k-drawing class file is never read whole. Each
    output file is written atomically. Returns class -> rows written. ``dst`` must not be
    ``src``, inside it, or an existing file (refused before anything is written).
    """
    if per_class < 1:
        raise DataError(f"--per-class must be at least 1, got {per_class}")
    files = select_class_files(src, classes)
    dst = check_output_folder(dst, source=src)  # never SRC itself, inside it, or a file
    arrays = {name: open_class_file(path) for name, path in files.items()}  # all checked first
    written = {}
    for i, (name, arr) in enumerate(arrays.items()):
        n = min(per_class, len(arr))
        rng = np.random.default_rng([seed, i])
        rows = np.sort(rng.choice(len(arr), size=n, replace=False))
        save_npy_atomic(dst / f"{name}.npy", np.ascontiguousarray(arr[rows]))
        written[name] = n
    return written


# --------------------------------------------------------------------------- the walkthrough's choices
def walkthrough_classes(root: str | os.PathLike, preferred: Sequence[str] | None = None) -> list[str] | None:
    """The classes the notebooks use: ``preferred`` (default: the ten, ``categories.THE_TEN``)
    when the folder has all of them, else ``None`` (every class, e.g. the offline default's doodles)."""
    if preferred is None:
        from .categories import THE_TEN
        preferred = THE_TEN
    files = list_class_files(root)
    return list(preferred) if all(c in files for c in preferred) else None


# --------------------------------------------------------------------------- pixel and ink statistics
def pixel_statistics(data: SketchData) -> list[dict]:
    """Per-class pixel and ink statistics of uint8 drawings.

    For every class: drawings, mean ink (sum of pixel values / 255, i.e. "full
    pixels" of ink), the share of pixels that are background (0), full ink (255)
    and in between (antialiased edges), and the mean ink bounding box in pixels.
    """
    from .rasterize import bbox_size

    rows = []
    for c, name in enumerate(data.classes):
        imgs = np.asarray(data.images[data.labels == c])
        box = bbox_size(imgs).mean(axis=0) if len(imgs) else (0.0, 0.0)
        rows.append({
            "class": name, "drawings": len(imgs),
            "ink": float(imgs.sum(axis=1, dtype=np.int64).mean() / 255) if len(imgs) else 0.0,
            "background": float((imgs == 0).mean()) if len(imgs) else 0.0,
            "full_ink": float((imgs == 255).mean()) if len(imgs) else 0.0,
            "edge": float(((imgs > 0) & (imgs < 255)).mean()) if len(imgs) else 0.0,
            "bbox_h": float(box[0]), "bbox_w": float(box[1]),
        })
    return rows


def format_statistics(rows: list[dict]) -> str:
    """``pixel_statistics`` as a text table."""
    width = max(8, *(len(r["class"]) for r in rows))
    lines = [f"{'class':<{width}}  {'drawings':>8}  {'ink px':>6}  {'backgr.':>7}  {'full ink':>8}  "
             f"{'edges':>6}  {'box h x w':>9}"]
    lines += [f"{r['class']:<{width}}  {r['drawings']:>8,}  {r['ink']:>6.1f}  {r['background']:>7.1%}  "
              f"{r['full_ink']:>8.1%}  {r['edge']:>6.1%}  {r['bbox_h']:>4.1f}x{r['bbox_w']:<4.1f}" for r in rows]
    return "\n".join(lines)
