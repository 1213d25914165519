"""Atomic file writes: a file is either its old self or complete, never half-written.

Every file QuickSketch writes (class ``.npy`` files, checkpoints, histories,
downloads, the doodle marker) goes through :func:`atomic_write`: the content is
written to a temporary file in the same folder, flushed to disk, and renamed
over the target. An interrupted write leaves the old file intact and removes
the temporary one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` through :func:`atomic_write` (a file object, so no ".npy" is appended)."""
    with atomic_write(path) as f:
        np.save(f, array, allow_pickle=False)
    return Path(path)
