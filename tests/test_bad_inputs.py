"""Hostile inputs and faults through the command line (issue 14).

Every case asserts the exit code, one line ``error: ...`` (or argparse's one usage line)
naming what was wrong, no traceback, and that nothing on disk was lost or changed. Most
cases run ``cli.main`` in-process (seconds); the kill-during-save case runs a subprocess.
Deadlines are passed small (``--timeout 1``) so the misbehaving servers take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import make_shapes
from quicksketch_lib.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from quicksketch_lib.cli import main
from quicksketch_lib.files import atomic_write, exclusive_lock
from quicksketch_lib.model import ModelConfig, SketchCNN
from test_download import RangeHandler, _serve

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers
def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, out, err


def one_line(capsys, code_expected: int, *args) -> str:
    """Run, assert the exit code and exactly one error line; return it."""
    code, _, err = run(capsys, *args)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("warning: ")]
    assert code == code_expected, (code, err)
    assert len(lines) == 1 and "error: " in lines[0], err
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> SHA-256 of its bytes (to prove nothing changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_checkpoint(path: Path, **changes) -> Path:
    """An untrained but valid checkpoint of box, cross and ring (seconds faster than training
    one); ``changes`` replace its fields after the model is built."""
    torch.manual_seed(0)
    model = SketchCNN(ModelConfig(num_classes=3))
    ckpt = Checkpoint(model_state=model.state_dict(), model_config=model.config, classes=["box", "cross", "ring"])
    for key, value in changes.items():
        setattr(ckpt, key, value)
    return save_checkpoint(ckpt, path)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / "d"
    folder.mkdir()
    for name, arr in make_shapes().items():
        np.save(folder / f"{name}.npy", arr)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shapes) -> Path:
    """A checkpoint trained for 1 epoch of 2 batches on the shapes (with fingerprint)."""
    out = tmp_path_factory.mktemp("trained") / "s.pt"
    assert main(["train", "--data", str(shapes), "--epochs", "1", "--batch-size", "32", "--max-batches", "2",
                 "--threads", "1", "--out", str(out), "--quiet"]) == 0
    return out


def _tmpfs(tmp_path, name: str, options: str, what: str):
    """Mount a small tmpfs at ``tmp_path/name`` for the test, unmount it after; skip the test
    where mounting is not allowed (it needs root and mount rights, e.g. not in CI containers)."""
    mnt = tmp_path / name
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip(f"cannot mount {what} here (needs root and mount rights)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs: a full disk."""
    yield from _tmpfs(tmp_path, "small", "size=1m", "a small tmpfs")


@pytest.fixture
def read_only(tmp_path):
    """A read-only mount (chmod does not stop root)."""
    yield from _tmpfs(tmp_path, "ro", "ro,size=1m", "a read-only tmpfs")


# --------------------------------------------------------------------------- 1. data loss: subset
def test_subset_never_writes_into_its_source(capsys, shapes, tmp_path):
    before = snapshot(shapes)
    assert "same folder" in one_line(capsys, 3, "subset", shapes, shapes, "--per-class", 10)
    assert "inside the source" in one_line(capsys, 3, "subset", shapes, shapes / "sub", "--per-class", 10)
    link = tmp_path / "alias"
    link.symlink_to(shapes)
    assert "same folder" in one_line(capsys, 3, "subset", shapes, link, "--per-class", 10)
    (tmp_path / "file").write_text("keep me")
    assert "existing file" in one_line(capsys, 3, "subset", shapes, tmp_path / "file", "--per-class", 10)
    assert snapshot(shapes) == before and (tmp_path / "file").read_text() == "keep me"
    assert not (shapes / "sub").exists()


# --------------------------------------------------------------------------- 7. usage errors: exit 2
@pytest.mark.parametrize("args", [
    ["train", "--batch-size", "0"], ["train", "--batch-size", "-1"], ["train", "--lr", "nan"],
    ["train", "--lr", "inf"], ["train", "--lr", "-1"], ["train", "--lr", "0"], ["train", "--seed", "-1"],
    ["train", "--threads", "0"], ["train", "--threads", "-2"], ["train", "--device", "gpu"],
    ["train", "--per-class", "0"], ["train", "--recipe", "fast"], ["train", "--epochs", "0"],
    ["train", "--max-batches", "0"], ["subset", "a", "b", "--per-class", "0"],
    ["subset", "a", "b", "--per-class", "-5"], ["download", "--per-class", "0"],
    ["download", "--per-class", "-5"], ["download", "--format", "csv"],
    ["evaluate", "pretrained", "--data", "x", "--per-class", "0"], ["predict", "pretrained", "x.npy", "--top-k", "0"],
    ["predict", "pretrained", "x.npy", "--top-k", "-3"], ["export", "pretrained", "--opset", "0"],
    ["download", "--timeout", "0"], ["demo", "--epochs", "0"],
])
def test_bad_option_values_exit_2_in_one_line(capsys, args):
    code, out, err = run(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "error:" in err and args[-2] in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps"])
def test_absent_device_is_a_usage_error(capsys, device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    code, _, err = run(capsys, "train", "--device", device)
    assert code == 2 and device in err and "--device cpu or auto" in err


# --------------------------------------------------------------------------- checkpoints
def test_broken_checkpoints_are_refused_in_our_words(capsys, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    # predict reads its inputs first (a missing input is said before the checkpoint is opened)
    np.save(tmp_path / "x.npy", np.full((1, 784), 255, np.uint8))
    assert "is empty (0 bytes)" in one_line(capsys, 3, "predict", empty, tmp_path / "x.npy")
    header = tmp_path / "header.pt"
    torch.save({"format": "quicksketch-checkpoint", "format_version": 1}, header)
    assert "incomplete" in one_line(capsys, 3, "evaluate", header, "--data", tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "quicksketch-checkpoint", "x": SketchCNN}, evil)  # a class: a pickled global
    line = one_line(capsys, 3, "export", evil)
    assert "not a QuickSketch checkpoint" in line and "PyTorch 2.6" not in line
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(b"\x80\x04\x95" + os.urandom(64))
    assert "Python pickle" in one_line(capsys, 3, "export", pickled)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    assert "not a QuickSketch checkpoint" in one_line(capsys, 3, "export", noise)
    assert "is a folder" in one_line(capsys, 3, "export", tmp_path)


def test_checkpoints_that_would_predict_wrongly_are_refused(capsys, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, make_shapes(2)["box"])
    good = tiny_checkpoint(tmp_path / "good.pt")
    state = load_checkpoint(good).model_state
    cases = {
        "four.pt": ({"classes": ["box", "cross", "ring", "star"]}, "output layer has 3"),
        "twins.pt": ({"classes": ["box", "box", "ring"]}, "more than once"),
        "nan.pt": ({"model_state": {k: v.clone().fill_(float("nan")) if v.is_floating_point() else v
                                    for k, v in state.items()}}, "NaN or infinite"),
    }
    for name, (changes, expected) in cases.items():
        path = tiny_checkpoint(tmp_path / name, **changes)
        assert expected in one_line(capsys, 3, "predict", path, rows), name


# --------------------------------------------------------------------------- .npy files
def test_npy_headers_are_checked_against_the_file(capsys, tmp_path, shapes):
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    huge = tmp_path / "huge.npy"  # a header promising 10^12 rows, 200 bytes of data
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 784), np.uint8))
    header["shape"] = (10**12, 784)
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 200)
    assert "promises" in one_line(capsys, 3, "predict", ckpt, huge)
    text = tmp_path / "notes.npy"
    text.write_text("hello, these are notes\n")
    line = one_line(capsys, 3, "predict", ckpt, text)
    assert "is text" in line and "pickled" not in line
    big_header = tmp_path / "bighead.npy"
    big_header.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 64 << 20) + b"{")
    line = one_line(capsys, 3, "predict", ckpt, big_header)
    assert "header claims 67,108,876 bytes" in line and "allow_pickle" not in line


def test_odd_entries_in_a_data_folder_are_named_in_warnings(capsys, tmp_path, shapes):
    folder = tmp_path / "d"
    folder.mkdir()
    for p in shapes.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "x.npy").mkdir()
    (folder / "loop.npy").symlink_to(folder / "loop.npy")
    os.mkfifo(folder / "pipe.npy")
    code, _, err = run(capsys, "subset", folder, tmp_path / "out", "--per-class", 3)
    assert code == 0
    assert "x.npy (a folder)" in err and "loop.npy (a symlink loop)" in err and "pipe.npy (a FIFO)" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["box.npy", "cross.npy", "ring.npy"]


# --------------------------------------------------------------------------- pictures
def _png(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def _circle(mode: str, size: int, ink, paper) -> Image.Image:
    im = Image.new(mode, (size, size), paper)
    ImageDraw.Draw(im).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), outline=ink,
                               width=max(2, size // 40))
    return im


def test_pictures_in_any_mode_give_the_same_drawing(tmp_path):
    from quicksketch_lib.drawing import load_image

    reference = load_image(_png(tmp_path / "l.png", _circle("L", 200, 0, 255)))
    assert (reference > 0).sum() > 50
    variants = {
        "rgba_white_on_transparent.png": _circle("RGBA", 200, (255, 255, 255, 255), (0, 0, 0, 0)),
        "rgba_black_on_transparent.png": _circle("RGBA", 200, (0, 0, 0, 255), (255, 255, 255, 0)),
        "sixteen_bit.png": _circle("I;16", 200, 0, 65535),
        "palette.png": _circle("L", 200, 0, 255).convert("P"),
        "one_bit.png": _circle("1", 200, 0, 1),
    }
    for name, image in variants.items():
        got = load_image(_png(tmp_path / name, image))
        assert np.abs(got.astype(int) - reference).mean() < 8, name


@pytest.mark.parametrize("name,image", [
    ("white.png", Image.new("L", (300, 200), 255)),
    ("black.png", Image.new("L", (300, 200), 0)),
    ("transparent.png", Image.new("RGBA", (300, 200), (0, 0, 0, 0))),
    ("paper.png", Image.fromarray(np.random.default_rng(0).integers(247, 254, (200, 300), dtype=np.uint8))),
    ("speck.png", Image.fromarray(np.pad(np.zeros((1, 2), np.uint8), 199, constant_values=255))),
])
def test_blank_pictures_say_so(capsys, tmp_path, name, image):
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    picture = _png(tmp_path / name, image)
    code, out, _ = run(capsys, "predict", ckpt, picture)
    assert code == 0 and out.strip() == f"{name}: blank drawing (no ink found); draw something"
    code, out, _ = run(capsys, "predict", ckpt, picture, "--json")
    assert code == 0 and json.loads(out) == [{"input": name, "blank": True, "top_k": []}]


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` (1-bit) but holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_huge_and_tiny_pictures_are_one_line(capsys, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    for side in (10_000, 20_000):
        line = one_line(capsys, 3, "predict", ckpt, _png_header_only(tmp_path / f"big{side}.png", side, side))
        assert f"big{side}.png" in line and "megapixels" in line
    tiny = _png(tmp_path / "tiny.png", Image.new("L", (1, 1), 0))
    assert "tiny.png" in one_line(capsys, 3, "predict", ckpt, tiny)


def test_a_large_picture_is_read_in_bounded_memory(tmp_path):
    """A 6000x6000 1-bit PNG (a few KB) used 3.2 GB before; now well under 300 MB."""
    picture = _png(tmp_path / "big.png", _circle("1", 6000, 0, 1))
    code = ("import resource, sys; from quicksketch_lib.drawing import load_image; "
            "a = load_image(sys.argv[1]); assert a.any(); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    base = ("import resource, quicksketch_lib.drawing, PIL.Image, PIL.PngImagePlugin; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    used = int(subprocess.check_output([sys.executable, "-c", code, str(picture)], cwd=ROOT))
    idle = int(subprocess.check_output([sys.executable, "-c", base], cwd=ROOT))
    assert (used - idle) / 1024 < 200, f"{(used - idle) / 1024:.0f} MB for one picture"


# --------------------------------------------------------------------------- training
def test_train_outputs_are_checked_before_training(capsys, shapes, tmp_path):
    (tmp_path / "dir.pt").mkdir()
    assert "is a folder" in one_line(capsys, 3, "train", "--data", shapes, "--out", tmp_path / "dir.pt")
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line(capsys, 3, "train", "--data", shapes, "--out", tmp_path / "file" / "m.pt")


def test_read_only_outputs_fail_at_once(capsys, shapes, trained, read_only):
    start = time.monotonic()
    assert "Read-only" in one_line(capsys, 3, "train", "--data", shapes, "--out", read_only / "m.pt")
    assert "Read-only" in one_line(capsys, 3, "subset", shapes, read_only / "sub", "--per-class", 3)
    assert "Read-only" in one_line(capsys, 3, "evaluate", trained, "--data", shapes, "--json", read_only / "e.json")
    assert "Read-only" in one_line(capsys, 3, "export", trained, "--out", read_only / "m.onnx")
    assert "Read-only" in one_line(capsys, 3, "download", "--classes", "cat", "--source", shapes, "--out", read_only)
    assert time.monotonic() - start < 30


def test_full_disk_is_one_line_and_leaves_nothing_behind(capsys, shapes, small_disk):
    line = one_line(capsys, 3, "train", "--data", shapes, "--epochs", "1", "--max-batches", "1",
                    "--threads", "1", "--out", small_disk / "m.pt", "--quiet")
    assert "No space left on device" in line and "m.pt" in line
    big = small_disk.parent / "big"
    big.mkdir()
    np.save(big / "a.npy", np.full((2000, 784), 255, np.uint8))  # all ink: drawings, not blank
    np.save(big / "b.npy", np.full((2000, 784), 255, np.uint8))
    assert "No space left on device" in one_line(capsys, 3, "subset", big, small_disk / "sub", "--per-class", 2000)
    assert not [p for p in small_disk.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


def test_two_trainings_cannot_write_one_file(capsys, shapes, tmp_path):
    out = tmp_path / "m.pt"
    with exclusive_lock(out):  # as a second process holding it would
        line = one_line(capsys, 3, "train", "--data", shapes, "--epochs", "1", "--out", out, "--quiet")
    assert "another training is writing it" in line and not out.exists()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from quicksketch_lib.files import exclusive_lock\n"
        "with exclusive_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(30)"), str(out)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_line(capsys, 3, "train", "--data", shapes, "--epochs", "1", "--out", out, "--quiet")
        assert f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder, even on SIGKILL: training can go on
    assert main(["train", "--data", str(shapes), "--epochs", "1", "--max-batches", "1", "--threads", "1",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()


def test_resume_refuses_other_settings_and_says_nothing_to_do(capsys, shapes, trained):
    before = snapshot(trained.parent)
    common = ["train", "--data", shapes, "--out", trained, "--resume", "--quiet", "--threads", "1"]
    for option in (["--lr", "0.01"], ["--seed", "3"], ["--batch-size", "64"], ["--recipe", "quicksketch"]):
        line = one_line(capsys, 3, *common, "--epochs", "2", *option)
        assert "cannot resume with other settings" in line and option[0].lstrip("-").replace("-", "_") in line
    code, out, _ = run(capsys, *common)
    assert code == 0 and "nothing to do" in out and "saved" not in out
    assert snapshot(trained.parent) == before


def test_diverging_training_stops_without_saving(capsys, shapes, tmp_path):
    line = one_line(capsys, 3, "train", "--data", shapes, "--epochs", "1", "--lr", "1e30", "--threads", "1",
                    "--out", tmp_path / "m.pt", "--quiet")
    assert "diverged" in line and "lower --lr" in line
    assert not (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------- evaluate
def test_evaluate_knows_its_training_data_by_content(capsys, shapes, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # another working directory than training's
    code, out, _ = run(capsys, "evaluate", trained, "--data", shapes)
    held = int(out.split()[0])
    assert code == 0 and "(held-out split recorded in the checkpoint)" in out and 0 < held < 180
    code, out, _ = run(capsys, "evaluate", trained, "--data", shapes, "--per-class", 30)
    assert code == 0 and "held-out drawings recorded" in out and int(out.split()[0]) < held
    twin = tmp_path / "twin"  # same classes and counts, other drawings
    twin.mkdir()
    for name, arr in make_shapes(seed=5).items():
        np.save(twin / f"{name}.npy", arr)
    code, out, _ = run(capsys, "evaluate", trained, "--data", twin)
    assert code == 0 and out.startswith("180 drawings (all drawings (none of them is one the model was trained on")


def test_evaluate_of_an_older_checkpoint_says_it_could_not_verify(capsys, shapes, trained, tmp_path):
    ckpt = load_checkpoint(trained)
    ckpt.data.pop("sha256")
    old = save_checkpoint(ckpt, tmp_path / "old.pt")
    code, out, _ = run(capsys, "evaluate", old, "--data", shapes)
    assert code == 0 and "could not verify" in out


def test_evaluate_outputs_are_checked_first(capsys, shapes, trained, tmp_path):
    (tmp_path / "d.json").mkdir()
    assert "is a folder" in one_line(capsys, 3, "evaluate", trained, "--data", shapes, "--json", tmp_path / "d.json")
    assert "is a folder" in one_line(capsys, 3, "evaluate", trained, "--data", shapes, "--png", tmp_path)


# --------------------------------------------------------------------------- export and ONNX
@pytest.fixture(scope="module")
def exported(trained):
    assert main(["export", str(trained)]) == 0
    return trained.with_suffix(".onnx")


def test_export_refuses_an_opset_it_cannot_write(capsys, trained, tmp_path):
    line = one_line(capsys, 3, "export", trained, "--opset", "1", "--out", tmp_path / "m.onnx")
    assert "cannot write opset 1" in line
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_onnx_files_that_are_missing_empty_garbage_or_foreign(capsys, trained, exported, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, make_shapes(2)["ring"])
    lone = tiny_checkpoint(tmp_path / "lone.pt")
    assert "not found" in one_line(capsys, 3, "predict", lone, rows, "--backend", "onnx")
    lone.with_suffix(".onnx").write_bytes(b"")
    assert "empty" in one_line(capsys, 3, "predict", lone, rows, "--backend", "onnx")
    lone.with_suffix(".onnx").write_bytes(os.urandom(999))
    assert "not a readable ONNX model" in one_line(capsys, 3, "predict", lone, rows, "--backend", "onnx")
    # another model's .onnx beside it, newer: auto uses PyTorch and says why
    lone.with_suffix(".onnx").write_bytes(exported.read_bytes())
    code, out, err = run(capsys, "predict", lone, rows, "--json")
    assert code == 0 and json.loads(out) and "warning: " in err and "not exported from" in err
    code, out, err = run(capsys, "predict", trained, rows)  # the right .onnx: used without a warning
    assert code == 0 and "not exported from" not in err


# --------------------------------------------------------------------------- downloads
ROWS = 40


class Misbehaving(RangeHandler):
    """Serves <class>.npy like Google's bucket, with validators (ETag, Last-Modified,
    If-Range), misbehaving as ``mode`` says: drip, steady, cut, html, noreply."""

    mode = "ok"
    cut_at = None  # bytes of the body sent before closing (mode "cut")

    def do_GET(self):
        if self.mode == "noreply":
            self.close_connection = True
            return
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
        if self.mode == "html":
            body = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        rng, first, last = self.headers.get("Range"), 0, len(data) - 1
        fresh = self.headers.get("If-Range") in (None, etag)
        if rng and fresh:
            a, _, b = rng.removeprefix("bytes=").partition("-")
            first, last = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        else:
            self.send_response(200)
        body = data[first:last + 1]
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self._send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, body: bytes) -> None:
        if self.mode == "drip":
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.2)
        elif self.mode == "steady":
            for i in range(0, len(body), 2048):
                self.wfile.write(body[i:i + 2048])
                self.wfile.flush()
                time.sleep(0.1)
        elif self.mode == "cut" and len(body) > self.cut_at:
            self.wfile.write(body[:self.cut_at])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(body)


def _bucket(tmp_path: Path, seed: int = 0, rows: int = ROWS) -> Path:
    bucket = tmp_path / "bucket"
    bucket.mkdir(exist_ok=True)
    np.save(bucket / "cat.npy", np.random.default_rng(seed).integers(0, 256, (rows, 784), dtype=np.uint8))
    return bucket


def _handler(mode: str, cut_at: int | None = None):
    return type(f"Misbehaving_{mode}", (Misbehaving,), {"mode": mode, "cut_at": cut_at})


def _download(capsys, url, out, *extra):
    return run(capsys, "download", "--classes", "cat", "--per-class", ROWS, "--out", out, "--source", url,
               "--quiet", "--timeout", "1", "--deadline", "20", *extra)


def test_a_dripping_server_is_a_stall_not_a_hang(capsys, tmp_path):
    start = time.monotonic()
    with _serve(_handler("drip"), _bucket(tmp_path)) as (url, _):
        code, _, err = _download(capsys, url, tmp_path / "out")
    assert code == 4 and "stalled" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - start < 15


def test_the_overall_deadline_stops_a_slow_but_steady_download(capsys, tmp_path):
    start = time.monotonic()
    with _serve(_handler("steady"), _bucket(tmp_path, rows=400)) as (url, _):
        code, _, err = _download(capsys, url, tmp_path / "out", "--deadline", "1.5", "--per-class", "400")
    assert code == 4 and "deadline of 1.5 s" in err
    assert time.monotonic() - start < 15


def test_a_cut_download_resumes_and_a_changed_file_restarts(capsys, tmp_path):
    out = tmp_path / "out"
    bucket = _bucket(tmp_path, seed=0)
    with _serve(_handler("cut", cut_at=5000), bucket) as (url, _):
        code, _, err = _download(capsys, url, out)
        assert code == 4 and "broke off" in err and "again to resume" in err
        assert (out / "cat.npy.part").exists() and not (out / "cat.npy").exists()
        _bucket(tmp_path, seed=1)  # the served file changes before the next attempt
    with _serve(_handler("ok"), bucket) as (url, seen):
        code, _, _ = _download(capsys, url, out)
    assert code == 0
    np.testing.assert_array_equal(np.load(out / "cat.npy"), np.load(bucket / "cat.npy"))  # not spliced
    assert sorted(p.name for p in out.iterdir()) == ["cat.npy"]


def test_a_changed_length_restarts_without_validators(capsys, tmp_path):
    out = tmp_path / "out"
    bucket = _bucket(tmp_path, seed=0)
    with _serve(_handler("cut", cut_at=5000), bucket) as (url, _):
        _download(capsys, url, out)
    _bucket(tmp_path, seed=1, rows=ROWS + 7)
    with _serve(RangeHandler, bucket) as (url, _):  # no ETag/Last-Modified, ranges honoured
        code, _, _ = _download(capsys, url, out)
    assert code == 0
    np.testing.assert_array_equal(np.load(out / "cat.npy"), np.load(bucket / "cat.npy")[:ROWS])


@pytest.mark.parametrize("mode,expected", [("html", "HTML"), ("noreply", "accepted the connection")])
def test_servers_that_answer_wrongly(capsys, tmp_path, mode, expected):
    with _serve(_handler(mode), _bucket(tmp_path)) as (url, _):
        code, _, err = _download(capsys, url, tmp_path / "out")
    assert code == 4 and expected in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "out").glob("*.npy"))


def test_a_64_mib_header_is_refused_without_fetching_it(capsys, tmp_path):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "cat.npy").write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 64 << 20) + b"{" * 4096)
    with _serve(_handler("ok"), bucket) as (url, seen):
        code, _, err = _download(capsys, url, tmp_path / "out")
    assert code == 4 and "header claims" in err and "allow_pickle" not in err
    assert len(seen) == 0 or all("bytes=0-1023" in (r or "") or r is None for _, r in seen)


def test_download_without_source_uses_the_default(capsys, tmp_path, monkeypatch):
    import quicksketch_lib.download as download

    with _serve(_handler("ok"), _bucket(tmp_path)) as (url, seen):
        monkeypatch.setattr(download, "DEFAULT_SOURCE", url)
        code, out, _ = run(capsys, "download", "--classes", "cat", "--per-class", 5, "--out", tmp_path / "o",
                           "--quiet")
    assert code == 0 and np.load(tmp_path / "o" / "cat.npy").shape == (5, 784)


def test_local_sources_and_outputs(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.npy").write_bytes(b"")
    assert "empty" in one_line(capsys, 4, "download", "--classes", "cat", "--source", src, "--out", tmp_path / "o")
    (tmp_path / "file").write_text("x")
    assert "existing file" in one_line(capsys, 3, "download", "--classes", "cat", "--source", src,
                                       "--out", tmp_path / "file")
    np.save(src / "cat.npy", np.zeros((3, 784), np.uint8))
    assert "same folder" in one_line(capsys, 3, "download", "--classes", "cat", "--source", src, "--out", src)


def test_demo_asks_is_online_about_a_host(monkeypatch, tmp_path):
    import quicksketch_lib.download as download
    import quicksketch_lib.locations as locations

    asked = []
    monkeypatch.setattr(download, "is_online", lambda host, *a, **k: asked.append(host) or False)
    monkeypatch.setattr(download, "data_source", lambda *a, **k: locations.DataSource(tmp_path, "offline-default"))
    monkeypatch.setattr(download, "find_data", lambda *a, **k: locations.DataSource(tmp_path, "offline-default"))
    download.choose_demo_data()
    assert asked == ["storage.googleapis.com"]
    assert not download.is_online("http://127.0.0.1:9/x", timeout=1)  # a URL works too


# --------------------------------------------------------------------------- files
def test_atomic_write_respects_the_umask_and_cleans_up(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"half")
            raise RuntimeError("failed mid-write")
    assert (tmp_path / "a.bin").read_bytes() == b"x" and sorted(os.listdir(tmp_path)) == ["a.bin"]


def test_kill_during_save_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "rows.npy"
    np.save(target, np.zeros((10, 784), np.uint8))
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, numpy as np; from quicksketch_lib.files import atomic_write\n"
        "a = np.ones((20_000, 784), np.uint8)\n"
        "while True:\n"
        "    with atomic_write(sys.argv[1]) as f:\n"
        "        np.save(f, a); print('saved', flush=True)\n"), str(target)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        writer.stdout.readline()
        time.sleep(0.3)  # in the middle of another save, most likely
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert np.load(target).shape in ((10, 784), (20_000, 784))  # old or new, never half
    with atomic_write(target) as f:
        np.save(f, np.zeros((1, 784), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["rows.npy"]  # the killed writer's temporary is gone


def test_sigint_then_resume_matches_an_uninterrupted_run(shapes, tmp_path):
    """SIGINT during training keeps the last epoch's checkpoint; --resume finishes it."""
    out = tmp_path / "m.pt"
    args = [sys.executable, "-m", "quicksketch_lib", "train", "--data", str(shapes), "--epochs", "40",
            "--batch-size", "32", "--threads", "1", "--out", str(out), "--precision", "fp32"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith("epoch  2/"):  # printed just before epoch 2 is saved
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    done = load_checkpoint(out).metrics["epochs"]
    assert 1 <= done < 40  # SIGINT during epoch 2's save keeps epoch 1's file
    resumed = subprocess.run(args[:-4] + ["--epochs", str(done + 1), "--out", str(out), "--precision", "fp32",
                                          "--resume", "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert resumed.returncode == 0 and load_checkpoint(out).metrics["epochs"] == done + 1


# --------------------------------------------------------------------------- the input contract (issue 22.1, 20.4)
def _rows(shapes: Path, n: int = 3) -> np.ndarray:
    return np.load(shapes / "ring.npy")[:n]


@pytest.mark.parametrize("name,rows,expected", [
    ("inf.npy", np.full((2, 784), np.inf, np.float32), r"inf\.npy\[0\]: holds NaN or infinite values \(and 1 more row\)"),
    ("nan.npy", np.vstack([np.zeros((1, 784)), np.full((1, 784), np.nan)]), r"nan\.npy\[1\]: holds NaN or infinite"),
    ("int16.npy", None, r"int16\.npy\[0\]: holds values -100\.\.\d+, outside 0\.\.255"),
    ("empty.npy", np.zeros((0, 784), np.uint8), r"empty\.npy: holds 0 drawings"),
])
def test_rows_that_are_not_drawings_are_refused_by_predict_and_teach(capsys, tmp_path, shapes, name, rows, expected):
    """Never "house 98.5 %" for infinities, never a class for values clipped into range."""
    if rows is None:  # the same rows as uint8, stored as int16 and shifted down: -100..155
        rows = _rows(shapes).astype(np.int16) - 100
    np.save(tmp_path / name, rows)
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    assert re.search(expected, one_line(capsys, 3, "predict", ckpt, tmp_path / name))
    line = one_line(capsys, 3, "teach", ckpt, "--name", "thing", "--drawings", tmp_path / name,
                    "--out", tmp_path / "t.pt")
    assert re.search(expected, line) and not (tmp_path / "t.pt").exists()


def test_fortran_ordered_files_are_the_same_drawings(capsys, tmp_path, shapes, trained):
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    np.save(tmp_path / "c.npy", _rows(shapes))
    np.save(tmp_path / "f.npy", np.asfortranarray(_rows(shapes)))
    outputs = [run(capsys, "predict", ckpt, tmp_path / f"{k}.npy", "--json")[:2] for k in "cf"]
    assert outputs[0][0] == outputs[1][0] == 0
    assert outputs[0][1].replace("c.npy", "f.npy") == outputs[1][1]
    folder = tmp_path / "fortran"  # a data folder with a Fortran-ordered class file
    folder.mkdir()
    for p in shapes.glob("*.npy"):
        arr = np.load(p)
        np.save(folder / p.name, np.asfortranarray(arr) if p.stem == "ring" else arr)
    evaluated = [run(capsys, "evaluate", trained, "--data", d)[:2] for d in (shapes, folder)]
    assert evaluated[0][0] == evaluated[1][0] == 0
    assert evaluated[0][1].replace(f"…/{shapes.name}", "D") == evaluated[1][1].replace(f"…/{folder.name}", "D")


def _faint_noise_and_one_pixel() -> np.ndarray:
    rows = np.zeros((2, 784), np.uint8)
    rows[0] = (np.random.default_rng(0).random(784) < 0.3) * 30  # paper noise: max 30
    rows[1, 400] = 255  # a single ink pixel
    return rows


def test_faint_noise_and_one_pixel_are_blank_for_predict_teach_and_the_widget(capsys, tmp_path, monkeypatch):
    from quicksketch_lib import widgets
    from quicksketch_lib.errors import InputError

    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    np.save(tmp_path / "faint.npy", _faint_noise_and_one_pixel())
    code, out, _ = run(capsys, "predict", ckpt, tmp_path / "faint.npy")
    assert code == 0 and out.splitlines() == [f"faint.npy[{i}]: blank drawing (no ink found); draw something"
                                              for i in (0, 1)]
    line = one_line(capsys, 3, "teach", ckpt, "--name", "faint", "--drawings", tmp_path / "faint.npy",
                    "--out", tmp_path / "t.pt")
    assert "faint.npy: 2 of 2 drawings are blank" in line and "rows 0, 1" in line
    pad = widgets.SketchPad(str(ckpt))
    for image in _faint_noise_and_one_pixel():  # what the canvas would give, put in by hand
        monkeypatch.setattr(widgets, "rasterize_strokes", lambda strokes, image=image: image.reshape(28, 28))
        assert pad.update_from_strokes([[[0, 9], [0, 9]]]) == [] and pad.headline == "draw something"
        with pytest.raises(InputError, match="the canvas is blank"):
            pad.add_example()


def test_a_data_folder_with_a_blank_drawing_is_refused_by_file_and_row(capsys, tmp_path, shapes, trained):
    folder = tmp_path / "d"
    folder.mkdir()
    for p in shapes.glob("*.npy"):
        arr = np.load(p)
        if p.stem == "box":
            arr[5] = _faint_noise_and_one_pixel()[0]
        np.save(folder / p.name, arr)
    for args in (["evaluate", trained, "--data", folder],
                 ["train", "--data", folder, "--epochs", "1", "--out", tmp_path / "m.pt", "--quiet"]):
        line = one_line(capsys, 3, *args)
        assert f"{folder / 'box.npy'}: 1 of 60 drawings are blank" in line and "row 5;" in line


def _smooth_circle() -> Image.Image:
    """A dark circle on white with smoothed (grey) edges, as drawing programs save them."""
    big = _circle("L", 800, 0, 255)
    return big.resize((200, 200), Image.LANCZOS)


def test_a_palette_pictures_transparent_colour_is_paper_whatever_colour_it_holds(capsys, tmp_path):
    """Its smoothed edges are grey opaque pixels: reading the opacity as ink made them full ink."""
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    plain = _png(tmp_path / "plain.png", _smooth_circle())
    expected = run(capsys, "predict", ckpt, plain, "--json")[1].replace("plain.png", "X")
    for colour in ([255, 255, 255], [255, 0, 0], [0, 0, 0]):  # what the transparent index holds
        picture = _smooth_circle().convert("P")
        paper = int(np.asarray(picture)[0, 0])
        palette = picture.getpalette()
        palette[3 * paper:3 * paper + 3] = colour
        picture.putpalette(palette)
        name = f"palette_{'_'.join(map(str, colour))}.png"
        picture.save(tmp_path / name, transparency=paper)
        code, out, _ = run(capsys, "predict", ckpt, tmp_path / name, "--json")
        assert code == 0 and out.replace(name, "X") == expected, colour


def test_an_animation_is_read_from_its_first_frame_with_ink_and_says_so(capsys, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "c.pt")
    drawn = _circle("L", 200, 0, 255)
    drawn.save(tmp_path / "still.gif")
    Image.new("L", (200, 200), 255).save(tmp_path / "anim.gif", save_all=True, append_images=[drawn], duration=100)
    expected = run(capsys, "predict", ckpt, tmp_path / "still.gif")[1].replace("still.gif", "X")
    code, out, err = run(capsys, "predict", ckpt, tmp_path / "anim.gif")
    assert code == 0 and out.replace("anim.gif", "X") == expected and "blank drawing" not in out
    assert "anim.gif: frame 0 is blank in this animation; read frame 1" in err


# --------------------------------------------------------------------------- issue 21/22: one registry of commands
@pytest.mark.parametrize("args", [
    ["teach", "pretrained", "--seed", "-1"], ["teach", "pretrained", "--seed", "x"],
    ["teach", "pretrained", "--threads", "-3"], ["bench", "--per-class", "0"], ["bench", "--threads", "-1"],
    ["bench", "--device", "gpu"],
])
def test_teach_and_bench_options_use_the_same_validators(capsys, args):
    code, _, err = run(capsys, *args, *(["--out", "x.pt"] if args[0] == "teach" else []))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "error:" in err and args[-1] in err


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\x07", " ", "x" * 65])
def test_class_names_are_one_line_of_printable_text(capsys, name):
    line = one_line(capsys, 2, "teach", "pretrained", "--name", name, "--drawings", "x.npy", "--out", "x.pt")
    assert "class name" in line


@pytest.mark.parametrize("args", [
    ["train", "--out", "pretrained"], ["train", "--out", "pretrained", "--resume"],
    ["train", "--out", "pretrained-54"], ["teach", "pretrained", "--forget", "x", "--out", "pretrained"],
    ["export", "pretrained", "--out", "pretrained"], ["evaluate", "pretrained", "--data", "d", "--json", "pretrained"],
    ["evaluate", "pretrained", "--data", "d", "--png", "pretrained-54"], ["subset", "a", "pretrained", "--per-class", "1"],
    ["download", "--out", "pretrained"], ["demo", "--out", "pretrained"], ["bench", "--json", "pretrained"],
])
def test_the_shipped_models_names_cannot_be_outputs(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    line = one_line(capsys, 2, *args)
    assert "names a shipped model" in line and not any(tmp_path.iterdir())


@pytest.mark.parametrize("setting", ["schedule=bogus", "optimizer=sgd", "weight_decay=-1", "label_smoothing=2",
                                     "step_size=0", "precision=fp8", "gamma=0", "val_fraction=1", "partial=1.5",
                                     "ema_decay=1", "warmup_epochs=-1", "augment=nan", "epochs=0", "seed=-1"])
def test_set_values_the_config_refuses_exit_2_in_one_line(capsys, tmp_path, setting):
    line = one_line(capsys, 2, "train", "--data", tmp_path, "--out", tmp_path / "m.pt", "--set", setting)
    assert setting.split("=")[0] in line and "expected" in line and not (tmp_path / "m.pt").exists()


def test_teach_checks_its_output_before_reading_or_teaching(capsys, tmp_path, read_only):
    (tmp_path / "dir.pt").mkdir()
    missing = tmp_path / "missing.npy"  # never read: the output is refused first
    assert "is a folder" in one_line(capsys, 3, "teach", "pretrained", "--name", "apple", "--drawings", missing,
                                     "--out", tmp_path / "dir.pt")
    assert "Read-only" in one_line(capsys, 3, "teach", "pretrained", "--name", "apple", "--drawings", missing,
                                   "--out", read_only / "t.pt")


@pytest.mark.parametrize("setting", ["model.dropout=1.5", "model.channels=0,8", "model.channels=a,b",
                                     "model.num_classes=3", "model.hidden=0"])
def test_set_model_values_the_config_refuses_exit_2_in_one_line(capsys, tmp_path, setting):
    line = one_line(capsys, 2, "train", "--data", tmp_path, "--out", tmp_path / "m.pt", "--set", setting)
    assert setting.split("=")[0] in line and not (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------- issue 22: evaluate by name, per drawing
def _arrows(n: int = 8, seed: int = 3) -> np.ndarray:
    """Horizontal arrows: a class the shapes model does not know (named to sort before its own)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        y, x0, x1 = rng.integers(10, 18), rng.integers(4, 9), rng.integers(19, 24)
        out[i, y - 1:y + 1, x0:x1] = 255
        for d in range(4):
            out[i, y - d - 1:y - d + 1, x1 - d - 1] = out[i, y + d - 1:y + d + 1, x1 - d - 1] = 255
    return out.reshape(n, 784)


def _class_folder(path: Path, arrays: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(path / f"{name}.npy", arr)
    return path


def test_a_taught_model_is_evaluated_by_class_name(capsys, trained, shapes, tmp_path):
    """Taught 'arrow' (its 4th output), evaluated on a folder where arrow sorts FIRST: it works
    (it used to say "the model knows 4 classes but the data has 4"); its 8 examples are left
    out as drawings it learned from; a subset of its classes works too; a class it does not
    know is one line, exit 3."""
    arrows = _arrows(12)
    np.save(tmp_path / "arrows.npy", arrows[:8])
    taught = tmp_path / "taught.pt"
    code, _, err = run(capsys, "teach", trained, "--name", "arrow", "--drawings", tmp_path / "arrows.npy",
                       "--out", taught)
    assert code == 0, err
    new = make_shapes(10, seed=11)
    folder = _class_folder(tmp_path / "four", {"arrow": arrows, **new})
    code, out, err = run(capsys, "evaluate", taught, "--data", folder)
    assert code == 0, err
    assert "44 drawings" not in out and "34 drawings" in out  # 30 new shapes + the 4 arrows never taught
    assert "left out 8 drawings the model was trained on" in out
    table = out.split("class ")[1].split("confusion")[0]
    assert all(f"\n{c} " in table for c in ("box", "cross", "ring", "arrow"))
    code, out, err = run(capsys, "evaluate", taught, "--data", folder, "--classes", "arrow", "ring")
    assert code == 0 and "not in the data: 2 of the model's 4 classes (box, cross)" in out
    _class_folder(folder, {"star": new["box"]})
    line = one_line(capsys, 3, "evaluate", taught, "--data", folder)
    assert "'star' not known to the model" in line and "--classes" in line
    assert "'star' not known" in one_line(capsys, 3, "evaluate", taught, "--data", folder, "--classes", "star")


def test_copies_of_training_drawings_are_never_taken_for_new_ones(capsys, trained, shapes, tmp_path):
    """The first 30 rows of each training file, copied elsewhere: the fingerprint was per file,
    so they passed as "not the checkpoint's training data"; now each drawing is looked up."""
    ckpt = load_checkpoint(trained)
    val = set(ckpt.split["val_indices"].tolist())
    copies = {c: np.load(shapes / f"{c}.npy")[:30] for c in ("box", "cross", "ring")}
    trained_rows = sum(1 for k in range(3) for r in range(30) if k * 60 + r not in val)
    code, out, err = run(capsys, "evaluate", trained, "--data", _class_folder(tmp_path / "copy", copies))
    assert code == 0, err
    assert f"{90 - trained_rows} drawings (" in out
    assert f"left out {trained_rows} drawings the model was trained on: found elsewhere" in out


def _edited_checkpoint(source: Path, path: Path, edit) -> Path:
    d = torch.load(source, weights_only=True)
    edit(d)
    torch.save(d, path)
    return path


def _as_taught(d, taught):
    """A 4th output row for a class 'kite' recorded as taught by ``taught``."""
    d["classes"] = d["classes"] + ["kite"]
    d["model_config"]["num_classes"] = 4
    for key in ("classifier.4.weight", "classifier.4.bias"):
        d["model_state"][key] = torch.cat([d["model_state"][key], d["model_state"][key][:1]])
    d["data"]["taught"] = taught


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["data"].update(replay="abc"), "replay record has no drawings"),
    (lambda d: d["data"].update(replay={"source": "x"}), "replay record has no drawings"),
    (lambda d: d["data"].update(replay={"drawings": {"kite": torch.zeros(3, 784, dtype=torch.uint8)}}),
     "replay drawings are for 'kite'"),
    (lambda d: _as_taught(d, "abc"), "taught-class record is a str"),
    (lambda d: _as_taught(d, [{"name": "kite"}]), "lacks a name or its example drawings"),
    (lambda d: _as_taught(d, [{"name": "star", "drawings": torch.ones(5, 784, dtype=torch.uint8)}]),
     "taught class 'star' is not one of its classes"),
])
def test_malformed_teach_and_replay_metadata_is_one_line(capsys, trained, tmp_path, edit, expected):
    """These were 5 kinds of traceback in `teach` (and `evaluate`, `predict`)."""
    bad = _edited_checkpoint(trained, tmp_path / "bad.pt", edit)
    np.save(tmp_path / "arrows.npy", _arrows(6))
    for args in (("teach", bad, "--name", "arrow", "--drawings", tmp_path / "arrows.npy", "--out", tmp_path / "o.pt"),
                 ("teach", bad, "--forget", "kite", "--out", tmp_path / "o.pt"),
                 ("predict", bad, tmp_path / "arrows.npy")):
        assert expected in one_line(capsys, 3, *args)
    assert not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize("classes, expected", [
    (["box", "cross", "ring", "star"], "lists 4 class names but the model has 3 outputs"),
    (["box", "cross"], "lists 2 class names but the model has 3 outputs"),
    ("abc", "no class list"),
])
def test_onnx_class_lists_that_do_not_fit_the_outputs_are_refused(capsys, trained, tmp_path, classes, expected):
    """Used to be: the first 3 of 4 names, a traceback for 2, and classes a, b, c for "abc"."""
    import onnx

    assert main(["export", str(trained), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    proto = onnx.load(str(tmp_path / "m.onnx"))
    next(p for p in proto.metadata_props if p.key == "quicksketch_classes").value = json.dumps(classes)
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    np.save(tmp_path / "rows.npy", make_shapes(2)["box"])
    assert expected in one_line(capsys, 3, "predict", tmp_path / "bad.onnx", tmp_path / "rows.npy")


def test_no_held_out_drawing_is_not_measured_and_int8_needs_enough_drawings(capsys, shapes, tmp_path):
    """One drawing per class: "held-out accuracy not measured" with a warning (it said 0.00 %);
    `export --int8` refuses to calibrate on it (it "calibrated on 1, checked on 2, OK")."""
    tiny = _class_folder(tmp_path / "tiny", {c: np.load(shapes / f"{c}.npy")[:1] for c in ("box", "cross", "ring")})
    out = tmp_path / "m.pt"
    code, printed, err = run(capsys, "train", "--data", tiny, "--epochs", "1", "--threads", "1", "--out", out)
    assert code == 0 and "held-out accuracy not measured" in printed and "held-out accuracy 0" not in printed
    assert "warning: " in err and "too little data to hold any drawing out" in err
    assert json.loads(out.with_name("m.history.json").read_text())[-1]["val_accuracy"] is None
    line = one_line(capsys, 3, "export", out, "--int8", "--data", tiny)
    assert "needs at least 200 drawings" in line and "found 0" in line  # all 3 were trained on
    assert not (tmp_path / "m.int8.onnx").exists()


def test_full_disk_during_download_names_the_file(capsys, tmp_path, small_disk):
    """It said ": No space left on device" without a file name."""
    with _serve(_handler("ok"), _bucket(tmp_path, rows=2000)) as (url, _):
        line = one_line(capsys, 3, "download", "--classes", "cat", "--per-class", 2000, "--out",
                        small_disk / "out", "--source", url, "--quiet", "--timeout", "5")
    assert "No space left on device" in line and "cat.npy.part" in line and "error: :" not in line


def test_kill_9_during_int8_export_leaves_no_folder_and_the_next_export_cleans_up(shapes, trained, tmp_path):
    """kill -9 during `export --int8` used to leave an empty tmpXXXX/ folder beside the output
    for good; now only scratch files named after the output, which the next export removes."""
    data = _class_folder(tmp_path / "new", make_shapes(70, seed=7))
    out = tmp_path / "out" / "m.onnx"
    args = [sys.executable, "-m", "quicksketch_lib", "export", str(trained), "--out", str(out), "--int8",
            "--data", str(data)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and \
                not list(out.parent.glob(".m.int8.onnx.*.tmp")):
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not [p for p in out.parent.iterdir() if p.is_dir()]
    assert main(["export", str(trained), "--out", str(out), "--int8", "--data", str(data)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.int8.onnx", "m.onnx"]
