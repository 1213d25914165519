"""Notebook 06 ("Teach it your own class") under nbval in the four data folders a learner can have.

``make test`` runs every notebook once, with the data it was given. A learner's folder may be
any of these, and 06 must work in each:

* **54 classes**: the project's real data (``../shared/data/quickdraw``): apple and fish are taught;
* **the ten**: what ``make demo`` online and ``quicksketch download`` of the ten leave: the new
  classes are the offline default's synthetic doodles, the ten are checked on real drawings;
* **the ten plus one**: after ``quicksketch download --classes apple``: apple is taught, the
  second class (exercise 1) is a doodle;
* **offline**: no real drawings (the offline default): doodles are taught, the ten are checked
  on the replay drawings the checkpoint carries.

Each setup runs 06 in a fresh kernel with nbval in **strict** mode, like ``make test``: the cells
whose output depends on the data carry ``NBVAL_IGNORE_OUTPUT``, the rest (shapes, the verdicts
"equals the model's output", "weights exactly as before", the figure layout) must match the
stored outputs in every setup. The folders are built in a temporary directory from symlinks into
``../shared`` (nothing is copied); without ``../shared`` only the offline setup runs and the others
skip, saying why. Each run is a subprocess with ``CI=true`` (the short mode) and
``QUICKSKETCH_DATA`` pointing at its folder. Under ``make test`` with ``../shared`` the "54 classes"
setup is ``make test``'s own nbval run of notebooks/06, so it is not run a second time here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.doodles import generate_doodles

from conftest import QUICKDRAW, ROOT

NOTEBOOK = ROOT / "notebooks" / "06_teach_your_own_class.ipynb"
SETUPS = {"54 classes": None, "the ten": THE_TEN, "the ten plus apple": (*THE_TEN, "apple"), "offline": ()}


def data_folder(setup: str, tmp_path: Path) -> Path:
    """The folder QUICKSKETCH_DATA points at for ``setup``."""
    if setup == "offline":  # the offline default's doodles (a few per class: 06 reads only that they are synthetic)
        return generate_doodles(tmp_path / "synthetic", per_class=20, seed=0, progress=False)
    if not QUICKDRAW.is_dir():
        pytest.skip(f"real Quick Draw drawings not found at {QUICKDRAW} (../shared/data): "
                    f"the '{setup}' setup is built from them")
    if SETUPS[setup] is None:
        return QUICKDRAW
    folder = tmp_path / "quickdraw"
    folder.mkdir()
    for name in SETUPS[setup]:
        (folder / f"{name}.npy").symlink_to(QUICKDRAW / f"{name}.npy")
    return folder


def run_by_this_session(folder: Path, session) -> bool:
    """Whether this pytest session's own nbval run of notebooks/ (``make test``) already runs 06
    exactly like this setup: CI=true and QUICKSKETCH_DATA at the same folder."""
    here = os.environ.get("QUICKSKETCH_DATA")
    collected = any(item.nodeid.startswith(f"notebooks/{NOTEBOOK.name}::") for item in session.items)
    return collected and os.environ.get("CI") == "true" and bool(here) and Path(here).resolve() == folder.resolve()


@pytest.mark.parametrize("setup", SETUPS)
def test_notebook_06_runs_and_matches_its_outputs_with_this_data(setup, tmp_path, request):
    folder = data_folder(setup, tmp_path)
    if run_by_this_session(folder, request.session):
        pytest.skip(f"the '{setup}' setup is this session's own nbval run of notebooks/{NOTEBOOK.name}")
    env = {**os.environ, "CI": "true", "QUICKSKETCH_DATA": str(folder)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(NOTEBOOK.relative_to(ROOT)), "--nbval", "--nbval-sanitize-with",
         "notebooks/sanitize.cfg", "-p", "no:cacheprovider", "-q", "--no-header"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, f"notebook 06 with {setup}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
