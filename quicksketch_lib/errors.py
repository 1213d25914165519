"""Exceptions that carry a one-line, actionable message for the user.

The command line turns each of these into ``error: <message>`` and an exit code
(``cli.EXIT_CODES``: 4 for a DownloadError, 3 for the others) instead of a traceback
from deep inside numpy or torch. :func:`check_fields` says what a config dataclass refuses in
the same one-line way (``field=value: expected ...``).
"""

import math
import numbers


class QuickSketchError(Exception):
    """Base class: the message alone tells the user what was wrong and what to do."""


class DataError(QuickSketchError):
    """A data folder or class file is missing, malformed or inconsistent."""


class CheckpointError(QuickSketchError):
    """A checkpoint is missing, corrupt, of an unknown format or does not fit the data."""


class InputError(QuickSketchError):
    """An input given to ``predict`` (image, array) cannot be read as a drawing."""


class DownloadError(QuickSketchError):
    """Data could not be fetched (offline, unknown class, server error)."""


class OutputError(QuickSketchError):
    """An output cannot be written: a folder where a file is expected, inside the input,
    read-only, full, or held by another run."""


class TrainingError(QuickSketchError):
    """Training cannot go on as asked: it diverged (non-finite loss) or a resume does
    not match the run it continues."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), else its type's name:
    how an error from numpy, torch or onnxruntime is quoted inside one of ours."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def whole_number(value, low: int) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``low``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def finite_number(value) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_fields(config, checks: dict[str, tuple[bool, str]]) -> None:
    """Raise ValueError ``field=value: expected ...`` for the first field of ``config`` whose
    check failed (``checks``: field -> (passed, what is expected)); a config's ``__post_init__``
    calls it, and the command line turns the ValueError into a usage error (exit 2)."""
    for name, (ok, expected) in checks.items():
        if not ok:
            raise ValueError(f"{name}={getattr(config, name)!r}: expected {expected}")
