"""Where things are: which data, which checkpoint, where to write. Every default path of
QuickSketch is decided here and nowhere else.

    data          --data, else $QUICKSKETCH_DATA, else data/quickdraw (what `quicksketch
                  download` writes), else the offline default data/synthetic (generated
                  on first use)
    strokes       $QUICKSKETCH_STROKES, else data/strokes (raw .ndjson drawings, optional)
    training      writes models/sketchcnn.pt unless told otherwise (--out)
    notebooks     read and write $QUICKSKETCH_CHECKPOINT, else models/sketchcnn.pt
    drawing       $QUICKSKETCH_CHECKPOINT, else models/sketchcnn.pt (notebook 03),
                  models/demo.pt (`make demo`), models/sketchpad.pt (a quick run), else
                  the shipped pretrained model
    pretrained    the words "pretrained" (the ten classes) and "pretrained-54" (every class
                  of the project's real data, for the game) name the shipped models
                  wherever a checkpoint is accepted

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


def find_data(explicit: str | os.PathLike | None = None, *, generate: bool = True,
              per_class: int = 2000) -> DataSource:
    """Pick the data folder: ``explicit``, then ``$QUICKSKETCH_DATA``, then
    ``data/quickdraw`` (what ``quicksketch download`` writes), then the offline
    default ``data/synthetic`` (generated on first use when ``generate``)."""
    if explicit:
        return DataSource(Path(explicit), "given")
    if os.environ.get(ENV_DATA):
        return DataSource(Path(os.environ[ENV_DATA]), "env")
    downloaded = project_root() / DOWNLOADED_DATA
    if downloaded.is_dir() and any(downloaded.glob("*.npy")):
        return DataSource(downloaded, "downloaded")
    synthetic = project_root() / SYNTHETIC_DATA
    if generate and not (synthetic / "SYNTHETIC.txt").exists():
        from .doodles import generate_doodles
        generate_doodles(synthetic, per_class=per_class, seed=0)
    return DataSource(synthetic, "offline-default")


def choose_demo_data(offline: bool = False, per_class: int = 1500) -> DataSource:
    """``make demo``'s data: as :func:`find_data`, but before falling back to the offline
    default, download the ten classes into ``data/quickdraw`` when the network is up."""
    source = find_data(generate=False)
    if source.kind != "offline-default":
        return source
    if not offline:
        from .categories import THE_TEN
        import urllib.parse

        from .download import DEFAULT_SOURCE, download_classes, is_online

        if is_online(urllib.parse.urlsplit(DEFAULT_SOURCE).hostname):  # a host, not the URL
            print("No data/quickdraw yet and the network is up: downloading the ten classes "
                  f"({per_class} drawings each) ...")
            target = project_root() / DOWNLOADED_DATA
            download_classes(THE_TEN, target, per_class=per_class)
            return DataSource(target, "downloaded")
        print("Offline and no data/quickdraw: using the offline default (synthetic doodles).")
    return find_data(generate=True)


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
