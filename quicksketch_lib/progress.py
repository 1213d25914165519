"""Progress bars in notebooks and terminals, none in logs.

Every long loop (training epochs, generating doodles, downloads) shows its bar through
:func:`progress_bar`, so none of them writes a stream of bar updates into a log file or a
CI transcript.
"""

from __future__ import annotations

import sys


def progress_bar(iterable=None, *, enabled: bool = True, **tqdm_options):
    """A ``tqdm`` bar (a widget in notebooks) over ``iterable`` or for ``bar.update(n)``;
    silent (``bar.disable`` true) when ``enabled`` is off or stderr is not a terminal."""
    from tqdm.auto import tqdm

    shown = enabled and (_in_notebook() or sys.stderr.isatty())
    return tqdm(iterable, disable=not shown, **tqdm_options)


def _in_notebook() -> bool:
    """Running inside a Jupyter kernel (not merely with ipykernel imported, as under pytest)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"
