"""Fetch real Quick, Draw! data: per-class subsets of Google's bitmaps, or stroke files.

:func:`download_classes` writes ``<out_dir>/<class>.npy`` ((N, 784) uint8, the
project's data format) or ``<out_dir>/<class>.ndjson`` (Google's stroke
files), class names spelled as in :data:`~quicksketch_lib.categories.CATEGORIES`.

Formats (``fmt``) and where they come from by default:

- ``"npy"``: ``DEFAULT_SOURCE/<class>.npy`` (Google's ``numpy_bitmap`` files).
  With ``per_class=N`` only the header (a small range request) and the first
  N rows (one more range request) are fetched, so 5,000 drawings of ten
  classes are about 40 MB instead of over 1 GB. A server that ignores ranges
  (answers 200) is streamed and the connection closed after N rows.
- ``"ndjson-raw"`` / ``"ndjson-simplified"``: Google's ``full/raw`` and
  ``full/simplified`` files (raw strokes with timing, or strokes already
  simplified to 0..255); with ``per_class=N`` the stream stops after N lines.

``source`` is a base URL holding ``<class>.npy`` / ``<class>.ndjson`` (a
mirror; with the default source, ndjson formats use Google's raw/simplified
folders) or a local folder with the same files (also ``full_numpy_bitmap_<class>.npy``),
read with a memory map. Downloads go to ``<file>.part`` first and resume from
its size with a range request when run again; the finished file is written
to a temporary name and renamed, so a folder never holds a half-written file.
Only the standard library's urllib is used.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .categories import CATEGORIES, closest_categories
from .errors import DownloadError
from .files import atomic_write, save_npy_atomic
from .progress import progress_bar

DEFAULT_SOURCE = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap"
NDJSON_SOURCES = {
    "ndjson-raw": "https://storage.googleapis.com/quickdraw_dataset/full/raw",
    "ndjson-simplified": "https://storage.googleapis.com/quickdraw_dataset/full/simplified",
}
FORMATS = ("npy", "ndjson-raw", "ndjson-simplified")
ROW_BYTES = 784
CHUNK = 1 << 16
HEADER_PROBE = 1024  # bytes asked for first; Google's .npy headers are 128
OFFLINE_HINT = ("check the network, pass --source (a mirror URL or a local folder), "
                "or generate the offline default (synthetic doodles)")


# --------------------------------------------------------------------------- checks
def is_online(host: str = "storage.googleapis.com", timeout: float = 3.0, port: int = 443) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_classes(classes: Iterable[str]) -> list[str]:
    """The class names, de-duplicated in order; an unknown one raises with suggestions."""
    names = list(dict.fromkeys(classes))
    if not names:
        raise DownloadError("no classes given; name at least one, e.g. --classes cat dog")
    for name in names:
        if name not in CATEGORIES:
            close = closest_categories(name)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else \
                "see quicksketch_lib.categories.CATEGORIES for the 345 names"
            raise DownloadError(f"unknown Quick Draw class {name!r}; {hint}")
    return names


def _is_url(source) -> bool:
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


def _local_folder(source) -> Path:
    folder = Path(source[len("file://"):] if str(source).startswith("file://") else source)
    if not folder.is_dir():
        raise DownloadError(f"source {folder} is not a folder or URL; expected an http(s) base "
                            "URL or a folder with <class>.npy / <class>.ndjson files")
    return folder


# --------------------------------------------------------------------------- HTTP
def _open(url: str, start: int, end: int | None, timeout: float):
    """urlopen with an optional ``Range``; None when the range lies past the end (416)."""
    headers = {"User-Agent": "quicksketch"}
    if start > 0 or end is not None:
        headers["Range"] = f"bytes={start}-{'' if end is None else end}"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:
            return None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; check the class name and "
                            "--source") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        host = urllib.parse.urlsplit(url).netloc
        raise DownloadError(f"cannot reach {host}: {getattr(e, 'reason', e)}; {OFFLINE_HINT}") from None


def _progress_bar(total, initial: int, desc: str, enabled: bool):
    return progress_bar(total=total, initial=initial, unit="B", unit_scale=True, desc=desc,
                        enabled=enabled, leave=False)


def _nth_newline_end(chunk: bytes, n: int) -> int:
    """Index just past the ``n``-th newline in ``chunk`` (which has at least n)."""
    at = -1
    for _ in range(n):
        at = chunk.index(b"\n", at + 1)
    return at + 1


def _fetch(url: str, part: Path, *, stop_bytes: int | None = None, stop_lines: int | None = None,
           timeout: float, progress: bool, desc: str) -> None:
    """Extend ``part`` with the bytes of ``url`` until ``stop_bytes``/``stop_lines`` or the end.

    Resumes from the size of ``part`` with a range request; when the server
    answers 200 (ignores ranges) the file is rewritten from the start.
    """
    start = part.stat().st_size if part.exists() else 0
    lines = part.read_bytes().count(b"\n") if start and stop_lines is not None else 0
    if (stop_bytes is not None and start >= stop_bytes) or \
            (stop_lines is not None and lines >= stop_lines):
        return
    resp = _open(url, start, None if stop_bytes is None else stop_bytes - 1, timeout)
    if resp is None:  # 416: the .part already holds the whole file
        return
    with resp:
        if resp.status == 206:
            if not resp.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                part.unlink()
                raise DownloadError(f"{url}: server sent range {resp.headers.get('Content-Range')!r} "
                                    f"for a request from byte {start}; the partial file was "
                                    "removed, run again")
            pos, mode = start, "ab"
        else:
            pos, mode, lines = 0, "wb", 0
        length = resp.headers.get("Content-Length")
        total = stop_bytes if stop_bytes is not None else (pos + int(length) if length else None)
        with open(part, mode) as f, _progress_bar(total, pos, desc, progress) as bar:
            while stop_bytes is None or pos < stop_bytes:
                try:
                    chunk = resp.read(CHUNK if stop_bytes is None else min(CHUNK, stop_bytes - pos))
                except (OSError, http.client.HTTPException) as e:
                    raise DownloadError(f"download of {url} broke off after {pos} bytes ({e}); "
                                        "run the same command again to resume") from None
                if not chunk:
                    break
                if stop_lines is not None and lines + chunk.count(b"\n") >= stop_lines:
                    chunk = chunk[:_nth_newline_end(chunk, stop_lines - lines)]
                    lines = stop_lines
                else:
                    lines += chunk.count(b"\n")
                f.write(chunk)
                pos += len(chunk)
                bar.update(len(chunk))
                if stop_lines is not None and lines >= stop_lines:
                    break


# --------------------------------------------------------------------------- .npy
def parse_npy_header(data: bytes) -> tuple[tuple[int, ...], np.dtype, bool, int] | int:
    """``(shape, dtype, fortran_order, data_offset)`` from the first bytes of a .npy file.

    Returns the number of bytes needed instead when ``data`` is too short to
    hold the whole header; raises :class:`ValueError` when it is not a .npy file.
    """
    if len(data) < 12:
        return 12
    buf = io.BytesIO(data)
    major, _ = np.lib.format.read_magic(buf)
    if major == 1:
        offset = 10 + struct.unpack("<H", data[8:10])[0]
    else:
        offset = 12 + struct.unpack("<I", data[8:12])[0]
    if len(data) < offset:
        return offset
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else \
        np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(buf)
    return tuple(shape), np.dtype(dtype), bool(fortran), offset


def _check_bitmap_header(where: str, shape, dtype, fortran) -> None:
    if len(shape) != 2 or shape[1] != ROW_BYTES or dtype != np.uint8 or fortran:
        raise DownloadError(f"{where} holds a {dtype} array of shape {shape}; expected (N, 784) "
                            "uint8 Quick Draw bitmaps (Google's numpy_bitmap format)")


def _remote_header(url: str, part: Path, timeout: float, progress: bool, desc: str):
    """Fetch (or reuse from ``part``) and parse the .npy header of ``url``."""
    need = HEADER_PROBE
    while True:
        _fetch(url, part, stop_bytes=need, timeout=timeout, progress=False, desc=desc)
        with open(part, "rb") as f:
            data = f.read(need)
        try:
            parsed = parse_npy_header(data)
        except ValueError as e:
            part.unlink()
            raise DownloadError(f"{url} is not a .npy file ({e}); check --source") from None
        if not isinstance(parsed, int):
            return parsed
        if len(data) < need:
            raise DownloadError(f"{url} ends inside its .npy header ({len(data)} bytes); "
                                "check --source")
        need = parsed


def _download_npy(url: str, dest: Path, per_class: int | None, timeout: float,
                  progress: bool) -> Path:
    part = dest.with_name(dest.name + ".part")
    shape, dtype, fortran, offset = _remote_header(url, part, timeout, progress, dest.stem)
    _check_bitmap_header(url, shape, dtype, fortran)
    rows = shape[0] if per_class is None else min(per_class, shape[0])
    end = offset + rows * ROW_BYTES
    _fetch(url, part, stop_bytes=end, timeout=timeout, progress=progress, desc=dest.stem)
    got = part.stat().st_size
    if got < end:
        raise DownloadError(f"{url} ended after {got} bytes; its header promises {end} for "
                            f"{rows} rows; run again to resume, or check --source")
    data = np.memmap(part, dtype=np.uint8, mode="r", offset=offset, shape=(rows, ROW_BYTES))
    save_npy_atomic(dest, data)
    del data
    part.unlink()
    return dest


def _copy_local_npy(folder: Path, name: str, dest: Path, per_class: int | None) -> Path:
    candidates = [folder / f"{name}.npy", folder / f"full_numpy_bitmap_{name}.npy"]
    src = next((p for p in candidates if p.is_file()), None)
    if src is None:
        raise DownloadError(f"{folder} has no {name}.npy; expected Google's numpy_bitmap files "
                            "named <class>.npy in the --source folder")
    try:
        arr = np.load(src, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DownloadError(f"{src} is not a readable .npy file ({e})") from None
    _check_bitmap_header(str(src), arr.shape, arr.dtype, np.isfortran(arr) and arr.ndim > 1)
    if dest.exists() and dest.resolve() == src.resolve() and per_class is None:
        return dest
    save_npy_atomic(dest, np.array(arr[: per_class if per_class is not None else len(arr)]))
    return dest


# --------------------------------------------------------------------------- .ndjson
def _download_ndjson(url: str, dest: Path, per_class: int | None, timeout: float,
                     progress: bool) -> Path:
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part, stop_lines=per_class, timeout=timeout, progress=progress, desc=dest.stem)
    if per_class is None:
        os.replace(part, dest)
    else:
        _copy_lines_atomic(part, dest, per_class)
        part.unlink()
    return dest


def _copy_lines_atomic(src: Path, dest: Path, limit: int | None) -> None:
    """Copy the first ``limit`` lines (all when None) of ``src`` to ``dest`` via a rename."""
    with open(src, "rb") as fin, atomic_write(dest) as fout:
        for i, line in enumerate(fin):
            if limit is not None and i >= limit:
                break
            fout.write(line)


def _copy_local_ndjson(folder: Path, name: str, dest: Path, per_class: int | None) -> Path:
    src = folder / f"{name}.ndjson"
    if not src.is_file():
        raise DownloadError(f"{folder} has no {name}.ndjson; expected Google's stroke files "
                            "named <class>.ndjson in the --source folder")
    if dest.exists() and dest.resolve() == src.resolve():
        return dest
    _copy_lines_atomic(src, dest, per_class)
    return dest


# --------------------------------------------------------------------------- public
def _already_done(dest: Path, per_class: int | None) -> bool:
    """A finished subset of exactly ``per_class`` rows is kept instead of fetched again."""
    if per_class is None or dest.suffix != ".npy" or not dest.is_file():
        return False
    try:
        arr = np.load(dest, mmap_mode="r", allow_pickle=False)
    except ValueError:
        return False
    return arr.shape == (per_class, ROW_BYTES) and arr.dtype == np.uint8


def download_classes(classes: Iterable[str], out_dir, per_class: int | None = None,
                     source: str | os.PathLike = DEFAULT_SOURCE, fmt: str = "npy",
                     progress: bool = True, timeout: float = 30) -> list[Path]:
    """Fetch Quick Draw data for ``classes`` into ``out_dir``; returns the written files.

    ``fmt`` is ``"npy"`` (bitmaps, written as (N, 784) uint8 ``<class>.npy``),
    ``"ndjson-raw"`` or ``"ndjson-simplified"`` (strokes, ``<class>.ndjson``).
    ``per_class`` keeps the first N drawings of each class (all when None);
    an existing ``<class>.npy`` of exactly that many rows is kept. ``source``
    is a base URL or a local folder (see the module docstring). Unknown class
    names, unreachable servers and malformed files raise :class:`DownloadError`
    with one line saying what to do; an interrupted download resumes from its
    ``.part`` file when run again.
    """
    if fmt not in FORMATS:
        raise DownloadError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise DownloadError(f"per_class={per_class!r}; expected a positive whole number or None")
    names = check_classes(classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = ".npy" if fmt == "npy" else ".ndjson"
    if source == DEFAULT_SOURCE and fmt != "npy":
        source = NDJSON_SOURCES[fmt]
    written = []
    for name in names:
        dest = out / f"{name}{ext}"
        if _already_done(dest, per_class):
            written.append(dest)
        elif _is_url(source):
            url = f"{str(source).rstrip('/')}/{urllib.parse.quote(name)}{ext}"
            fetch = _download_npy if fmt == "npy" else _download_ndjson
            written.append(fetch(url, dest, per_class, timeout, progress))
        else:
            copy = _copy_local_npy if fmt == "npy" else _copy_local_ndjson
            written.append(copy(_local_folder(source), name, dest, per_class))
    return written
