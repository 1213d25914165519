import numpy as np
import pytest
from PIL import Image

from quicksketch_lib.data import load_folder
from quicksketch_lib.inference import Predictor, predict, top_k_classes
from quicksketch_lib.rasterize import rasterize_strokes

from conftest import needs_shared_data


def test_top_k_orders_by_probability():
    assert top_k_classes(np.array([[0.1, 0.7, 0.2]]), ["a", "b", "c"], 2) == [[("b", 0.7), ("c", 0.2)]]


def test_predictor_guesses_the_right_shapes(shapes_checkpoint):
    predictor = Predictor.from_checkpoint(shapes_checkpoint, backend="torch")
    data = load_folder(predictor_data_root(shapes_checkpoint))
    guesses = predictor.predict(data.images[::4], top_k=3)
    assert all(len(g) == 3 and abs(sum(p for _, p in g) - 1) < 1e-5 for g in guesses)
    truth = [data.classes[i] for i in data.labels[::4]]
    assert np.mean([g[0][0] == t for g, t in zip(guesses, truth)]) >= 0.8
    single = predictor.predict(data.images[0].reshape(28, 28), top_k=1)  # one drawing: one list
    assert single[0][0] == guesses[0][0][0] and single[0][1] == pytest.approx(guesses[0][0][1], abs=1e-6)


def test_predict_function_on_an_image_file(shapes_checkpoint, tmp_path):
    data = load_folder(predictor_data_root(shapes_checkpoint))
    ring = data.images[data.labels == 2][0].reshape(28, 28)
    Image.fromarray(255 - ring).resize((200, 200)).save(tmp_path / "ring.png")  # dark on light
    [(name, guesses)] = predict(shapes_checkpoint, [tmp_path / "ring.png"], top_k=1, backend="torch")
    assert name == "ring.png" and guesses[0][0] == "ring"


@needs_shared_data
def test_real_strokes_are_recognised_about_as_well_as_held_out_bitmaps(strokes_dir):
    """The data issue's check: strokes rasterised by QuickSketch reach the model like training
    drawings. The shipped ten-class model (trained on the bitmaps, never on strokes): its accuracy
    on every recorded stroke drawing of the ten is within 15 points of its held-out bitmaps' (as
    recorded in the checkpoint; `test_cli` re-measures that figure with `evaluate`)."""
    from quicksketch_lib.checkpoint import load_checkpoint
    from quicksketch_lib.rasterize import read_ndjson

    ckpt = load_checkpoint("pretrained")
    predictor = Predictor.from_checkpoint("pretrained", backend="torch")
    images, labels = [], []
    for label, name in enumerate(ckpt.classes):
        for record in read_ndjson(strokes_dir / f"{name}.ndjson"):
            images.append(rasterize_strokes(record["drawing"]))
            labels.append(label)
    stroke_acc = np.mean(predictor.predict_proba(np.stack(images)).argmax(1) == np.array(labels))
    bitmap_acc = ckpt.metrics["val_accuracy"]
    print(f"{len(labels)} stroke drawings {stroke_acc:.1%}, held-out bitmaps {bitmap_acc:.1%}")
    assert len(labels) >= 100 and stroke_acc >= bitmap_acc - 0.15, (stroke_acc, bitmap_acc)


def predictor_data_root(checkpoint):
    from quicksketch_lib.checkpoint import load_checkpoint
    return load_checkpoint(checkpoint).data["root"]


def test_test_time_flip_follows_the_checkpoint_in_torch_and_onnx(shapes_checkpoint, tmp_path):
    """A checkpoint trained with tta_flip (--recipe quicksketch) is predicted as `evaluate`
    scores it: the mean of each drawing's and its mirror image's probabilities."""
    from quicksketch_lib.checkpoint import load_checkpoint, save_checkpoint
    from quicksketch_lib.export import export_onnx

    ckpt = load_checkpoint(shapes_checkpoint)
    drawings = load_folder(ckpt.data["root"]).images[::20]
    mirrored = drawings.reshape(-1, 28, 28)[:, :, ::-1]
    plain = Predictor.from_checkpoint(shapes_checkpoint, backend="torch")
    assert plain.tta_flip is False
    expected = (plain.predict_proba(drawings) + plain.predict_proba(mirrored)) / 2

    ckpt.train_config = {**ckpt.train_config, "tta_flip": True}
    path = save_checkpoint(ckpt, tmp_path / "flip.pt")
    flip = Predictor.from_checkpoint(path, backend="torch")
    assert flip.tta_flip is True
    np.testing.assert_allclose(flip.predict_proba(drawings), expected, atol=1e-6)
    assert not np.allclose(expected, plain.predict_proba(drawings), atol=1e-3)  # the flip matters

    onnx = Predictor.from_onnx(export_onnx(path, tmp_path / "flip.onnx").path)
    assert onnx.tta_flip is True
    np.testing.assert_allclose(onnx.predict_proba(drawings), expected, atol=1e-4)
    assert Predictor.from_checkpoint(path, backend="torch", tta_flip=False).tta_flip is False


# --------------------------------------------------------------------------- serving without torch
NO_TORCH = """
import sys
from quicksketch_lib.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "matplotlib", "onnx", "onnxscript") if m in sys.modules)
print("imported:", ",".join(heavy) or "none")
sys.exit(code)
"""


def _predict_in_fresh_process(env_cache, *args) -> tuple[str, str]:
    """``quicksketch predict ARGS`` in a new interpreter: (its guesses, the heavy modules it imported)."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", *map(str, args)], capture_output=True,
                            text=True, env={**os.environ, "XDG_CACHE_HOME": str(env_cache)})
    assert result.returncode == 0, result.stderr
    *guesses, imported = result.stdout.strip().splitlines()
    return "\n".join(guesses), imported


def _house_png(folder):
    from quicksketch_lib.demo import sample_drawings

    picture = 255 - np.asarray(Image.fromarray(rasterize_strokes(sample_drawings()["house"])).resize((140, 140)))
    Image.fromarray(picture).save(folder / "house.png")
    return folder / "house.png"


def test_the_shipped_model_answers_from_its_cached_onnx_export_without_torch(tmp_path, monkeypatch, capsys):
    """The first predict exports `pretrained` into the user's cache (the one time torch is
    imported; only when asked, as the command line does); from then on a fresh process answers
    with onnxruntime alone, exactly as PyTorch."""
    from quicksketch_lib.cli import main
    from quicksketch_lib.demo import sample_drawings
    from quicksketch_lib.export import export_onnx
    from quicksketch_lib.files import file_sha256
    from quicksketch_lib.locations import PRETRAINED, PRETRAINED_PATH, cached_onnx

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "quicksketch").mkdir(parents=True)
    stale = tmp_path / "cache" / "quicksketch" / "pretrained-0123456789abcdef.onnx"  # an older model's
    stale.write_bytes(b"old")
    rows = np.stack([rasterize_strokes(s).ravel() for s in sample_drawings().values()])
    np.save(tmp_path / "rows.npy", rows)
    png = _house_png(tmp_path)

    torch_answer = Predictor.from_checkpoint(PRETRAINED, backend="torch")
    cached = cached_onnx(PRETRAINED, file_sha256(PRETRAINED_PATH))
    assert Predictor.from_checkpoint(PRETRAINED).backend == "torch" and not cached.exists()  # no exporter: no write
    onnx_answer = Predictor.from_checkpoint(PRETRAINED, exporter=export_onnx)  # exports into the cache
    assert onnx_answer.backend == "onnxruntime" and cached.is_file() and not stale.exists()
    assert Predictor.from_checkpoint(PRETRAINED).backend == "onnxruntime"  # found there from now on
    assert onnx_answer.tta_flip == torch_answer.tta_flip and onnx_answer.classes == torch_answer.classes
    np.testing.assert_allclose(onnx_answer.predict_proba(rows), torch_answer.predict_proba(rows), atol=1e-5)

    assert main(["predict", PRETRAINED, str(tmp_path / "rows.npy"), str(png), "--backend", "torch"]) == 0
    expected = capsys.readouterr().out.strip()
    guesses, imported = _predict_in_fresh_process(tmp_path / "cache", PRETRAINED, tmp_path / "rows.npy", png)
    assert imported == "imported: none" and guesses == expected


def test_an_export_beside_a_checkpoint_answers_without_torch(shapes_checkpoint, tmp_path, capsys):
    import shutil

    from quicksketch_lib.cli import main
    from quicksketch_lib.export import export_onnx

    ckpt = str(shutil.copy(shapes_checkpoint, tmp_path / "m.pt"))
    export_onnx(ckpt, tmp_path / "m.onnx")
    np.save(tmp_path / "rows.npy", load_folder(predictor_data_root(shapes_checkpoint)).images[::30])
    assert main(["predict", ckpt, str(tmp_path / "rows.npy"), "--backend", "torch"]) == 0
    guesses, imported = _predict_in_fresh_process(tmp_path / "cache", ckpt, tmp_path / "rows.npy")
    assert imported == "imported: none" and guesses == capsys.readouterr().out.strip()
    assert not (tmp_path / "cache" / "quicksketch").exists()  # a user's checkpoint is never exported there


def test_a_cache_that_cannot_be_written_is_a_warning_and_torch_answers(tmp_path, monkeypatch):
    from quicksketch_lib.export import export_onnx
    from quicksketch_lib.locations import PRETRAINED

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    with pytest.warns(UserWarning, match="cannot keep an ONNX export of pretrained"):
        predictor = Predictor.from_checkpoint(PRETRAINED, exporter=export_onnx)
    assert predictor.backend == "torch"
