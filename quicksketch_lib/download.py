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
A resumed download sends the ``ETag``/``Last-Modified`` of the first attempt
(``If-Range``) and checks the file's total length, so a file changed on the server
in between is fetched again from the start instead of spliced. A download that
makes less than :data:`STALL_BYTES` of progress in ``timeout`` seconds, or takes
longer than ``deadline`` seconds in all, stops with :class:`DownloadError`.
Only the standard library's urllib is used.

:func:`choose_demo_data` is ``make demo``'s data: the ten classes downloaded when no data is
here and the network is up, else the offline default.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .categories import CATEGORIES, THE_TEN, closest_categories
from .data import NpyHeader, check_bitmap_header, find_data, parse_npy_header, read_npy_header
from .errors import DataError, DownloadError
from .files import DISK_ERRORS, atomic_write, check_output_folder, disk_error, save_npy_atomic
from .locations import DOWNLOADED_DATA, DataSource, data_source, project_root
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
STALL_BYTES = 1024  # less progress than this in `timeout` seconds is a stalled download
DEADLINE = 3600.0  # seconds for a whole download_classes call, by default
OFFLINE_HINT = ("check the network, pass --source (a mirror URL or a local folder), "
                "or generate the offline default (synthetic doodles)")


# --------------------------------------------------------------------------- checks
def is_online(host: str = "storage.googleapis.com", timeout: float = 3.0, port: int = 443) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds
    (a URL given as ``host`` is reduced to its host and port)."""
    if "://" in host:
        parts = urllib.parse.urlsplit(host)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
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
class Clock:
    """The time limits of one download: ``timeout`` seconds for each network wait and for
    every :data:`STALL_BYTES` of progress, ``deadline`` seconds in all."""

    def __init__(self, timeout: float = 30, deadline: float | None = DEADLINE):
        self.timeout = timeout
        self.end = None if deadline is None else time.monotonic() + deadline
        self.deadline = deadline

    def wait(self, what: str) -> float:
        """Seconds one network call may wait now; raises once the deadline has passed."""
        if self.end is None:
            return self.timeout
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.overdue(what)
        return min(self.timeout, left)

    def overdue(self, what: str) -> DownloadError | None:
        """The deadline's error once it has passed (None before)."""
        if self.end is None or time.monotonic() < self.end:
            return None
        return DownloadError(f"{what}: gave up after the overall deadline of {self.deadline:g} s; "
                             "run the same command again to resume (or raise --deadline)")


def _open(url: str, start: int, end: int | None, clock: Clock, validator: str | None = None):
    """urlopen with an optional ``Range`` (and ``If-Range``); None when the range lies past
    the end (416)."""
    headers = {"User-Agent": "quicksketch"}
    if start > 0 or end is not None:
        headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        if validator and start > 0:
            headers["If-Range"] = validator
    host = urllib.parse.urlsplit(url).netloc
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=clock.wait(url))
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:
            return None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; check the class name and "
                            "--source") from None
    except urllib.error.URLError as e:  # raised while connecting
        raise DownloadError(f"cannot reach {host}: {getattr(e, 'reason', e)}; {OFFLINE_HINT}") from None
    except (OSError, http.client.HTTPException) as e:  # connected, but no proper answer
        if clock.overdue(url):
            raise clock.overdue(url) from None
        raise DownloadError(f"{host} accepted the connection but did not answer properly for {url} "
                            f"({type(e).__name__}: {e or 'no reply'}); try again later or check --source") from None


def _progress_bar(total, initial: int, desc: str, enabled: bool):
    return progress_bar(total=total, initial=initial, unit="B", unit_scale=True, desc=desc,
                        enabled=enabled, leave=False)


def _nth_newline_end(chunk: bytes, n: int) -> int:
    """Index just past the ``n``-th newline in ``chunk`` (which has at least n)."""
    at = -1
    for _ in range(n):
        at = chunk.index(b"\n", at + 1)
    return at + 1


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_meta(part: Path) -> dict:
    try:
        return json.loads(_meta_path(part).read_text())
    except (OSError, ValueError):
        return {}


def _identity(resp) -> dict:
    """What identifies the served file: validators and total length."""
    total = resp.headers.get("Content-Range", "").rpartition("/")[2]
    length = resp.headers.get("Content-Length")
    return {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified"),
            "total": int(total) if total.isdigit() else (int(length) if resp.status == 200 and length
                                                          and length.isdigit() else None)}


def _changed(saved: dict, now: dict) -> bool:
    """Whether the served file differs from the one the ``.part`` was started from."""
    return any(saved.get(k) is not None and now.get(k) is not None and saved[k] != now[k]
               for k in ("etag", "last_modified", "total"))


def _restart(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


def _fetch(url: str, part: Path, *, stop_bytes: int | None = None, stop_lines: int | None = None,
           clock: Clock, progress: bool, desc: str) -> None:
    """Extend ``part`` with the bytes of ``url`` until ``stop_bytes``/``stop_lines`` or the end.

    Resumes from the size of ``part`` with a range request (``If-Range`` the first
    attempt's validator); when the server answers 200 (ignores ranges, or the file
    changed) the file is rewritten from the start, and a 206 of a changed file (other
    ETag, Last-Modified or total length) restarts it.
    """
    start = part.stat().st_size if part.exists() else 0
    saved = _read_meta(part) if start else {}
    lines = part.read_bytes().count(b"\n") if start and stop_lines is not None else 0
    if (stop_bytes is not None and start >= stop_bytes) or \
            (stop_lines is not None and lines >= stop_lines):
        return
    resp = _open(url, start, None if stop_bytes is None else stop_bytes - 1, clock,
                 saved.get("etag") or saved.get("last_modified"))
    if resp is None:  # 416: the .part already holds the whole file
        return
    with resp:
        now = _identity(resp)
        if resp.status == 206 and start and _changed(saved, now):
            _restart(part)
            raise _Changed()
        if resp.status == 206:
            if not resp.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                _restart(part)
                raise DownloadError(f"{url}: server sent range {resp.headers.get('Content-Range')!r} "
                                    f"for a request from byte {start}; the partial file was "
                                    "removed, run again")
            pos, mode = start, "ab"
        else:
            pos, mode, lines = 0, "wb", 0
        if mode == "wb" or not saved:
            with atomic_write(_meta_path(part), "w") as f:
                json.dump(now, f)
        length = resp.headers.get("Content-Length")
        sent = pos + int(length) if length and length.isdigit() else None
        total = stop_bytes if stop_bytes is not None else sent
        try:
            with open(part, mode) as f, _progress_bar(total, pos, desc, progress) as bar:
                pos, lines = _copy_body(resp, f, bar, url, pos, stop_bytes, stop_lines, lines, clock)
        except OSError as exc:  # a write's error names no file: name the one being written
            if exc.errno not in DISK_ERRORS:
                raise
            raise disk_error(part, exc) from None
        done = (stop_bytes is not None and pos >= stop_bytes) or (stop_lines is not None and lines >= stop_lines)
        if sent is not None and pos < sent and not done:
            raise DownloadError(f"download of {url} broke off after {pos} of {sent} bytes (the server "
                                "closed the connection); run the same command again to resume")


class _Changed(Exception):
    """The served file changed since the ``.part`` was started (it was removed)."""


def _copy_body(resp, f, bar, url: str, pos: int, stop_bytes: int | None, stop_lines: int | None,
               lines: int, clock: Clock) -> tuple[int, int]:
    """Write the response body to ``f`` under the clock's limits (see :class:`Clock`);
    returns the position and line count reached."""
    window_start, window_bytes = time.monotonic(), 0
    while stop_bytes is None or pos < stop_bytes:
        try:
            _set_read_timeout(resp, clock.wait(url))
            chunk = resp.read1(CHUNK if stop_bytes is None else min(CHUNK, stop_bytes - pos))
        except (OSError, http.client.HTTPException) as e:
            if isinstance(e, TimeoutError) and clock.overdue(url):
                raise clock.overdue(url) from None
            what = "stalled" if isinstance(e, TimeoutError) else "broke off"
            raise DownloadError(f"download of {url} {what} after {pos} bytes ({type(e).__name__}: "
                                f"{e or 'no data'}); run the same command again to resume") from None
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
        window_bytes += len(chunk)
        if window_bytes >= STALL_BYTES:
            window_start, window_bytes = time.monotonic(), 0
        elif time.monotonic() - window_start > clock.timeout:
            raise DownloadError(f"download of {url} stalled: less than {STALL_BYTES} bytes in "
                                f"{clock.timeout:g} s (at byte {pos}); run the same command again to "
                                "resume, or try later")
        if stop_lines is not None and lines >= stop_lines:
            break
    return pos, lines


def _set_read_timeout(resp, seconds: float) -> None:
    """Let the next read of ``resp`` wait at most ``seconds`` (the socket under urllib's reader)."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _fetch_fresh(url: str, part: Path, **kwargs) -> None:
    """:func:`_fetch`, once more from the start when the served file changed meanwhile."""
    try:
        _fetch(url, part, **kwargs)
    except _Changed:
        _fetch(url, part, **kwargs)


# --------------------------------------------------------------------------- .npy
def _check_bitmap_header(where: str, header: NpyHeader) -> None:
    """:func:`data.check_bitmap_header` (the one Quick Draw bitmap check) as a DownloadError."""
    try:
        check_bitmap_header(where, header)
    except DataError as exc:
        raise DownloadError(f"{exc} (Google's numpy_bitmap format)") from None


def _remote_header(url: str, part: Path, clock: Clock, desc: str) -> NpyHeader:
    """Fetch (or reuse from ``part``) and parse the .npy header of ``url``."""
    need = HEADER_PROBE
    while True:
        _fetch_fresh(url, part, stop_bytes=need, clock=clock, progress=False, desc=desc)
        with open(part, "rb") as f:
            data = f.read(need)
        try:
            parsed = parse_npy_header(data)
        except ValueError as e:
            _restart(part)
            raise DownloadError(f"{url}: {e}; check --source") from None
        if not isinstance(parsed, int):
            return parsed
        if len(data) < need:
            raise DownloadError(f"{url} ends inside its .npy header ({len(data)} bytes); "
                                "check --source")
        need = parsed


def _download_npy(url: str, dest: Path, per_class: int | None, clock: Clock,
                  progress: bool) -> Path:
    part = dest.with_name(dest.name + ".part")
    header = _remote_header(url, part, clock, dest.stem)
    _check_bitmap_header(url, header)
    rows = header.shape[0] if per_class is None else min(per_class, header.shape[0])
    end = header.offset + rows * ROW_BYTES
    _fetch_fresh(url, part, stop_bytes=end, clock=clock, progress=progress, desc=dest.stem)
    if _part_header(part, header.offset) != header:  # the file changed on the server meanwhile
        _restart(part)
        return _download_npy(url, dest, per_class, clock, progress)
    got = part.stat().st_size
    if got < end:
        raise DownloadError(f"{url} ended after {got} bytes; its header promises {end} for "
                            f"{rows} rows; run again to resume, or check --source")
    data = np.memmap(part, dtype=np.uint8, mode="r", offset=header.offset, shape=(rows, ROW_BYTES))
    save_npy_atomic(dest, data)
    del data
    _restart(part)
    return dest


def _part_header(part: Path, offset: int) -> NpyHeader | int | None:
    with open(part, "rb") as f:
        try:
            return parse_npy_header(f.read(offset))
        except ValueError:
            return None


def _copy_local_npy(folder: Path, name: str, dest: Path, per_class: int | None) -> Path:
    candidates = [folder / f"{name}.npy", folder / f"full_numpy_bitmap_{name}.npy"]
    src = next((p for p in candidates if p.is_file()), None)
    if src is None:
        raise DownloadError(f"{folder} has no {name}.npy; expected Google's numpy_bitmap files "
                            "named <class>.npy in the --source folder")
    try:
        _check_bitmap_header(str(src), read_npy_header(src))
    except DataError as exc:
        raise DownloadError(str(exc)) from None
    arr = np.load(src, mmap_mode="r", allow_pickle=False)
    if dest.exists() and dest.resolve() == src.resolve() and per_class is None:
        return dest
    save_npy_atomic(dest, np.array(arr[: per_class if per_class is not None else len(arr)]))
    return dest


# --------------------------------------------------------------------------- .ndjson
def _download_ndjson(url: str, dest: Path, per_class: int | None, clock: Clock,
                     progress: bool) -> Path:
    part = dest.with_name(dest.name + ".part")
    _fetch_fresh(url, part, stop_lines=per_class, clock=clock, progress=progress, desc=dest.stem)
    _copy_lines_atomic(part, dest, per_class)
    _restart(part)
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
        header = read_npy_header(dest)
    except DataError:
        return False
    return header.shape == (per_class, ROW_BYTES) and header.dtype == np.uint8


def download_classes(classes: Iterable[str], out_dir, per_class: int | None = None,
                     source: str | os.PathLike | None = None, fmt: str = "npy",
                     progress: bool = True, timeout: float = 30,
                     deadline: float | None = DEADLINE) -> list[Path]:
    """Fetch Quick Draw data for ``classes`` into ``out_dir``; returns the written files.

    ``fmt`` is ``"npy"`` (bitmaps, written as (N, 784) uint8 ``<class>.npy``),
    ``"ndjson-raw"`` or ``"ndjson-simplified"`` (strokes, ``<class>.ndjson``).
    ``per_class`` keeps the first N drawings of each class (all when None);
    an existing ``<class>.npy`` of exactly that many rows is kept. ``source``
    is a base URL or a local folder (None: Google's bucket; see the module docstring).
    ``timeout``: seconds a connection may wait, and in which at least
    :data:`STALL_BYTES` must arrive; ``deadline``: seconds for the whole call (None: no
    limit). Unknown class names, unreachable or stalled servers and malformed files raise
    :class:`DownloadError` with one line saying what to do; an interrupted download
    resumes from its ``.part`` file when run again.
    """
    if fmt not in FORMATS:
        raise DownloadError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise DownloadError(f"per_class={per_class!r}; expected a positive whole number or None")
    names = check_classes(classes)
    source = DEFAULT_SOURCE if source is None else source
    if source == DEFAULT_SOURCE and fmt != "npy":
        source = NDJSON_SOURCES[fmt]
    local = None if _is_url(source) else _local_folder(source)
    out = check_output_folder(out_dir, source=local)
    out.mkdir(parents=True, exist_ok=True)
    ext = ".npy" if fmt == "npy" else ".ndjson"
    clock = Clock(timeout, deadline)
    written = []
    for name in names:
        dest = out / f"{name}{ext}"
        if _already_done(dest, per_class):
            written.append(dest)
        elif local is None:
            url = f"{str(source).rstrip('/')}/{urllib.parse.quote(name)}{ext}"
            fetch = _download_npy if fmt == "npy" else _download_ndjson
            written.append(fetch(url, dest, per_class, clock, progress))
        else:
            copy = _copy_local_npy if fmt == "npy" else _copy_local_ndjson
            written.append(copy(local, name, dest, per_class))
    return written


def choose_demo_data(offline: bool = False, per_class: int = 1500) -> DataSource:
    """``make demo``'s data: as :func:`~quicksketch_lib.data.find_data`, but before falling back
    to the offline default, download the ten classes into ``data/quickdraw`` when the network is up."""
    source = data_source()
    if source.kind != "offline-default":
        return source
    if not offline:
        if is_online(urllib.parse.urlsplit(DEFAULT_SOURCE).hostname):  # a host, not the URL
            print("No data/quickdraw yet and the network is up: downloading the ten classes "
                  f"({per_class} drawings each) ...")
            target = project_root() / DOWNLOADED_DATA
            download_classes(THE_TEN, target, per_class=per_class)
            return DataSource(target, "downloaded")
        print("Offline and no data/quickdraw: using the offline default (synthetic doodles).")
    return find_data(generate=True)
