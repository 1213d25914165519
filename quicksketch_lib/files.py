"""Where QuickSketch writes: atomic files, checked output locations and a lock per output.

Every file QuickSketch writes (class ``.npy`` files, checkpoints, histories,
downloads, exports, evaluation reports, ONNX models) goes through :func:`atomic_write`
(or, for writers that need a file name, :func:`atomic_path`): the content is written to
a temporary file in the same folder, flushed to disk, and renamed over the target, so a
file is either its old self or complete. The new file gets the usual permissions
(``0666`` less the umask), like any file a program creates. A failed write (a full
disk, an exception, Ctrl-C) removes its temporary file and leaves the old file
untouched; only SIGKILL or a power cut can leave one behind
(``.<name>.<pid>.<random>.tmp``), and the next write of the same file removes those
whose process is gone.

Before any work, each command checks where it will write (:func:`check_output_file`,
:func:`check_output_folder`): not a directory where a file is expected, not inside
the data being read, and writable -- so a read-only folder fails in a second, not after
an epoch of training. :func:`exclusive_lock` keeps two trainings from writing one file.
:func:`shown_path` is how summaries print a path (never a machine's absolute folders).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator

from .errors import OutputError

if TYPE_CHECKING:  # numpy is imported where arrays are saved: `quicksketch --help` imports none
    import numpy as np

# errors of the disk or folder, not of QuickSketch: said in one line, exit 3
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


def _umask() -> int:
    """The process's umask (read without changing it where Linux shows it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` left beside ``path`` by a writer that was killed."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp$")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def disk_error(path: str | os.PathLike, exc: OSError, what: str = "write") -> OutputError:
    """A one-line :class:`OutputError` for an ``OSError`` met while writing ``path``."""
    reason = exc.strerror or type(exc).__name__
    hint = {errno.ENOSPC: "free some space or write elsewhere",
            errno.EDQUOT: "free some space or write elsewhere",
            errno.EROFS: "the disk is mounted read-only; write elsewhere"}.get(
        exc.errno, "check the folder exists and you may write there, or write elsewhere")
    return OutputError(f"{path}: cannot {what} ({reason}); {hint}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name beside ``path``, renamed to ``path`` when the block succeeds
    (for writers that take a file name, e.g. ``onnx.save``; :func:`atomic_write` opens it).

    A disk error (full, read-only, no permission) becomes one :class:`OutputError`; any
    failure removes the temporary file and leaves ``path`` as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file name to write")
    fd, tmp = _temporary_beside(path)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno is None and "written" in str(exc):  # numpy's short write: the disk filled up
            exc = OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {exc}")
        if exc.errno in DISK_ERRORS:
            raise disk_error(path, exc) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary_beside(path: Path) -> tuple[int, str]:
    """Create ``.<name>.<pid>.<random>.tmp`` beside ``path`` (first removing those of killed
    processes); a disk error is one :class:`OutputError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        raise disk_error(path, exc) from None


@contextmanager
def scratch_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` for an intermediate result of writing it (e.g. the
    fp32 model an int8 export starts from), removed when the block ends however it ends.
    Named like :func:`atomic_path`'s temporaries, so one left by a killed process is
    removed by the next write of ``path``: no folder, nothing that outlives two runs."""
    fd, tmp = _temporary_beside(Path(path))
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds
    (the rules of :func:`atomic_path`: disk errors in one line, nothing left behind)."""
    with atomic_path(path) as tmp, open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (an exported model records its checkpoint's)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` through :func:`atomic_write` (a file object, so no ".npy" is appended)."""
    import numpy as np

    with atomic_write(path) as f:
        np.save(f, array, allow_pickle=False)
    return Path(path)


# --------------------------------------------------------------------------- output locations
def _probe_folder(folder: Path, shown: Path) -> None:
    """Create and remove a file in the nearest existing folder at or above ``folder``."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{shown}: cannot write there: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".quicksketch-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise disk_error(shown, exc) from None


def check_output_file(path: str | os.PathLike, *, inside: str | os.PathLike | None = None) -> Path:
    """Check, before any work, that a file can be written at ``path``; return it.

    Refused: a folder, a path under an existing file, a folder that cannot be written,
    and (with ``inside``) a file inside the folder ``inside`` (the data being read).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file name to write")
    if inside is not None and _is_within(path, inside):
        raise OutputError(f"{path}: is inside the input folder {inside}; write it elsewhere")
    _probe_folder(path.parent, path)
    return path


def check_output_folder(folder: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
    """Check, before any work, that files can be written in ``folder``; return it.

    Refused: an existing file, a folder that cannot be written, and (with ``source``) the
    folder ``source`` itself or one inside it -- writing there would overwrite or mix with
    the drawings being read.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is an existing file; expected a folder to write into")
    if source is not None and _is_within(folder, source):
        same = _resolved(folder) == _resolved(source)
        raise OutputError(f"{folder}: is {'the same folder as' if same else 'inside'} the source {source}; "
                          "writing there would overwrite the drawings being read -- choose another folder")
    _probe_folder(folder, folder)
    return folder


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    path, folder = _resolved(path), _resolved(folder)
    return path == folder or folder in path.parents


# --------------------------------------------------------------------------- one writer per output
@contextmanager
def exclusive_lock(path: str | os.PathLike, what: str = "training") -> Iterator[Path]:
    """Hold ``.<name>.lock`` beside ``path`` for the block; refuse when another process holds it.

    An ``flock`` lock: the system releases it when the holder exits, even on SIGKILL, so
    a crashed run never blocks the next one. Raises :class:`OutputError` naming the holder.
    """
    import fcntl

    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(path, exc) from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as exc:
            raise disk_error(lock, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputError(f"{path}: another {what} is writing it (pid {holder}, lock {lock}); "
                              "wait for it to finish or choose another --out") from None
        try:  # the file may have been removed and re-created by the previous holder meanwhile
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


# --------------------------------------------------------------------------- paths as shown
CHECKOUT = Path(__file__).resolve().parents[1]  # the folder holding quicksketch_lib (the checkout)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as notebooks and summaries print it, without the machine's own folders: relative
    to the checkout when it is inside (``data/quickdraw``), as given when it is relative, else
    ``…/<its name>`` (an absolute path elsewhere, e.g. ``$QUICKSKETCH_DATA``). Error messages
    keep the full path: there it is what the reader must find."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    if CHECKOUT in path.parents:  # as written: data/quickdraw may be a link to the real drawings
        return str(path.relative_to(CHECKOUT))
    if _is_within(path, CHECKOUT):
        return str(_resolved(path).relative_to(CHECKOUT))
    return f"…/{path.name}"
