"""Atomic file writes: a file is either its old self or complete, never half-written.

Every file QuickSketch writes (class ``.npy`` files, checkpoints, histories,
downloads, the doodle marker, ONNX models) goes through :func:`atomic_write` (or,
for writers that need a file name, :func:`atomic_path`): the content is written to a
temporary file in the same folder and renamed over the target. An interrupted or
failed write leaves the old file intact and removes the temporary one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name beside ``path`` (for writers that take a name, e.g. onnx);
    renamed to ``path`` when the block succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` through :func:`atomic_write` (a file object, so no ".npy" is appended)."""
    with atomic_write(path) as f:
        np.save(f, array, allow_pickle=False)
    return Path(path)
