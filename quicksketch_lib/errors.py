"""Exceptions that carry a one-line, actionable message for the user.

The command line turns each of these into ``error: <message>`` and an exit code
(``cli.EXIT_CODES``: 4 for a DownloadError, 3 for the others) instead of a traceback
from deep inside numpy or torch.
"""


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
