"""Where things are: which data, which checkpoint, where to write. Every default path of
QuickSketch is decided here and nowhere else; nothing here reads, downloads or generates
data (``data.find_data`` generates the offline default, ``download.choose_demo_data``
downloads the ten for ``make demo``).

    data          --data, else $QUICKSKETCH_DATA, else data/quickdraw (what `quicksketch
                  download` writes), else the offline default data/synthetic (generated
                  on first use by data.find_data)
    strokes       $QUICKSKETCH_STROKES, else data/strokes (raw .ndjson drawings, optional)
    training      writes models/sketchcnn.pt unless told otherwise (--out)
    notebooks     read and write $QUICKSKETCH_CHECKPOINT, else models/sketchcnn.pt
    drawing       $QUICKSKETCH_CHECKPOINT, else models/sketchcnn.pt (notebook 03),
                  models/demo.pt (`make demo`), models/sketchpad.pt (a quick run), else
                  the shipped pretrained model
    pretrained    the words "pretrained" (the ten classes) and "pretrained-54" (every class
                  of the project's real data, for the game) name the shipped models
                  wherever a checkpoint is accepted
    cache         $XDG_CACHE_HOME/quicksketch, else ~/.cache/quicksketch: the shipped
                  models' ONNX exports that `predict` answers with (made on first use)

Relative paths are inside the checkout (:func:`project_root`). ``make test`` passes the
real drawings with ``QUICKSKETCH_DATA`` and points ``QUICKSKETCH_CHECKPOINT`` into
``artifacts/``, so tests never overwrite a model a person trained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .files import shown_path

ENV_DATA = "QUICKSKETCH_DATA"
ENV_STROKES = "QUICKSKETCH_STROKES"
ENV_CHECKPOINT = "QUICKSKETCH_CHECKPOINT"
ENV_CACHE = "XDG_CACHE_HOME"
DOWNLOADED_DATA = Path("data") / "quickdraw"
SYNTHETIC_DATA = Path("data") / "synthetic"
STROKES = Path("data") / "strokes"
DEFAULT_CHECKPOINT = Path("models") / "sketchcnn.pt"
DEMO_CHECKPOINT = Path("models") / "demo.pt"
QUICK_CHECKPOINT = Path("models") / "sketchpad.pt"
# The shipped models (README "Pretrained models"): the ten classes, and the 54 of the game.
PRETRAINED = "pretrained"
PRETRAINED_54 = "pretrained-54"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
PRETRAINED_PATH = PRETRAINED_DIR / "sketchcnn_ten.pt"
PRETRAINED_54_PATH = PRETRAINED_DIR / "sketchcnn_54.pt"
PRETRAINED_MODELS = {PRETRAINED: PRETRAINED_PATH, PRETRAINED_54: PRETRAINED_54_PATH}
PRETRAINED_ONNX = Path("models") / "pretrained.onnx"  # `quicksketch export pretrained` writes here, never into the package


def project_root() -> Path:
    """The QuickSketch checkout (folder with pyproject.toml) or the current directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


# --------------------------------------------------------------------------- data
@dataclass
class DataSource:
    path: Path
    kind: str  # "env", "downloaded", "offline-default" or "given"

    def describe(self) -> str:
        words = {"env": f"${ENV_DATA}", "downloaded": "downloaded Quick Draw data",
                 "offline-default": "the OFFLINE DEFAULT: synthetic doodles, not Quick Draw",
                 "given": "the folder given"}
        return f"Using data from {shown_path(self.path)} ({words[self.kind]})"


def data_source(explicit: str | os.PathLike | None = None) -> DataSource:
    """Which data folder: ``explicit``, then ``$QUICKSKETCH_DATA``, then ``data/quickdraw``
    (what ``quicksketch download`` writes), then the offline default ``data/synthetic``.
    Only decides: :func:`quicksketch_lib.data.find_data` also generates the offline default."""
    if explicit:
        return DataSource(Path(explicit), "given")
    if os.environ.get(ENV_DATA):
        return DataSource(Path(os.environ[ENV_DATA]), "env")
    downloaded = project_root() / DOWNLOADED_DATA
    if downloaded.is_dir() and any(downloaded.glob("*.npy")):
        return DataSource(downloaded, "downloaded")
    return DataSource(project_root() / SYNTHETIC_DATA, "offline-default")


def strokes_dir() -> Path:
    """Raw stroke drawings (``<class>.ndjson``): ``$QUICKSKETCH_STROKES``, else ``data/strokes``
    (it may not exist: stroke files are optional)."""
    return Path(os.environ.get(ENV_STROKES) or project_root() / STROKES)


# --------------------------------------------------------------------------- checkpoints
def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``"pretrained"`` / ``"pretrained-54"`` -> the shipped model's file; any other name is a path."""
    return PRETRAINED_MODELS.get(str(path), Path(path))


def pretrained_name(path: str | os.PathLike | None) -> str | None:
    """The name of the shipped model stored at ``path`` (``"pretrained"``, ``"pretrained-54"``),
    or None for any other file."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    return next((name for name, p in PRETRAINED_MODELS.items() if p.resolve() == resolved), None)


def pretrained_onnx(name: str) -> Path:
    """Where ``quicksketch export NAME`` writes for a shipped model: ``models/NAME.onnx``
    (relative to the current folder), never into the installed package."""
    return Path("models") / f"{name}.onnx"


def cache_dir() -> Path:
    """The user's cache folder for QuickSketch: ``$XDG_CACHE_HOME/quicksketch``, else
    ``~/.cache/quicksketch`` (a relative ``$XDG_CACHE_HOME`` is ignored, as the XDG spec says)."""
    base = os.environ.get(ENV_CACHE, "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "quicksketch"


def cached_onnx(name: str, checkpoint_sha256: str) -> Path:
    """Where ``predict`` keeps the ONNX export of the shipped model ``name`` whose checkpoint
    file has SHA-256 ``checkpoint_sha256``: ``<cache_dir>/<name>-<first 16 hex digits>.onnx``
    (a new version of the model gets a new file; the export records the whole hash)."""
    return cache_dir() / f"{name}-{checkpoint_sha256[:16]}.onnx"


def walkthrough_checkpoint() -> Path:
    """The notebooks' checkpoint: ``$QUICKSKETCH_CHECKPOINT``, else ``models/sketchcnn.pt``."""
    return Path(os.environ.get(ENV_CHECKPOINT) or project_root() / DEFAULT_CHECKPOINT)


def find_checkpoint() -> tuple[Path | None, str]:
    """The checkpoint to draw with: ``$QUICKSKETCH_CHECKPOINT``, else ``models/sketchcnn.pt``
    (notebook 03), ``models/demo.pt`` (``make demo``), ``models/sketchpad.pt`` (an earlier
    quick run), else the shipped pretrained model. Returns (path or None, why)."""
    if os.environ.get(ENV_CHECKPOINT):
        path = Path(os.environ[ENV_CHECKPOINT])
        if not path.is_file():
            raise InputError(f"${ENV_CHECKPOINT}={path} does not exist; point it at a "
                             "checkpoint (.pt) or unset it")
        return path, f"from ${ENV_CHECKPOINT}"
    for name, why in ((DEFAULT_CHECKPOINT, "trained in notebook 03"), (DEMO_CHECKPOINT, "written by `make demo`"),
                      (QUICK_CHECKPOINT, "a quick model trained here earlier")):
        path = project_root() / name
        if path.is_file():
            return path, why
    if PRETRAINED_PATH.is_file():
        return PRETRAINED_PATH, "the shipped pretrained model of the ten classes"
    return None, "no checkpoint found"
