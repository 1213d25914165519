"""The command line end to end: every subcommand, and a tested exit code for each bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from quicksketch_lib.locations import PRETRAINED_PATH
from quicksketch_lib.cli import EXIT_BAD_INPUT, EXIT_DOWNLOAD, EXIT_OK, main

from conftest import THE_TEN

SUBCOMMANDS = ["doctor", "subset", "train", "evaluate", "predict", "export", "download", "demo", "teach", "bench"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "quicksketch_lib", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_explains_itself(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def test_doctor(capsys):
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_OK and "torch" in out and "Trainer picks" in out
    code, out, _ = run(capsys, "doctor", "--json")
    assert json.loads(out)["trainer_device"] in ("cpu", "cuda", "mps")


def test_subset_train_evaluate_export_predict(shapes_dir, tmp_path, capsys):
    sub, ckpt = tmp_path / "sub", tmp_path / "m.pt"
    assert run(capsys, "subset", shapes_dir, sub, "--per-class", 40)[0] == EXIT_OK
    assert sorted(p.name for p in sub.iterdir()) == ["box.npy", "cross.npy", "ring.npy"]

    code, out, _ = run(capsys, "train", "--data", sub, "--epochs", 5, "--batch-size", 16, "--out", ckpt,
                       "--seed", 1, "--quiet")
    assert code == EXIT_OK and ckpt.exists() and "held-out accuracy" in out
    code, out, _ = run(capsys, "train", "--data", sub, "--epochs", 6, "--batch-size", 16, "--out", ckpt,
                       "--seed", 1, "--quiet", "--resume")
    assert code == EXIT_OK and "after 6 epochs" in out

    code, out, _ = run(capsys, "evaluate", ckpt, "--data", sub, "--json", tmp_path / "e.json",
                       "--png", tmp_path / "c.png")
    report = json.loads((tmp_path / "e.json").read_text())
    assert code == EXIT_OK and 0 <= report["accuracy"] <= 1 and report["n"] == 12
    assert "precision" in out and (tmp_path / "c.png").exists()

    code, out, _ = run(capsys, "export", ckpt, "--out", tmp_path / "m.onnx")
    assert code == EXIT_OK and "OK" in out and (tmp_path / "m.onnx").exists()

    np.save(tmp_path / "x.npy", np.load(sub / "ring.npy")[:2])
    for backend in ("torch", "onnx"):
        code, out, _ = run(capsys, "predict", ckpt, tmp_path / "x.npy", "--top-k", 2, "--backend", backend)
        assert code == EXIT_OK and out.count("x.npy[") == 2
    code, out, _ = run(capsys, "predict", ckpt, tmp_path / "x.npy", "--json")
    assert len(json.loads(out)[0]["top_k"]) == 3


def _bad_input(capsys, *argv) -> str:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_BAD_INPUT, err
    line = err.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in err
    return line


def test_bad_data_exits_3_with_one_line(tmp_path, capsys):
    assert "not found" in _bad_input(capsys, "train", "--data", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "no .npy" in _bad_input(capsys, "train", "--data", tmp_path / "empty")
    one = tmp_path / "one"
    one.mkdir()
    np.save(one / "cat.npy", np.zeros((5, 784), np.uint8))
    assert "at least 2" in _bad_input(capsys, "train", "--data", one)
    np.save(one / "dog.npy", np.zeros((5, 28, 28), np.uint8))
    assert "dog.npy" in _bad_input(capsys, "train", "--data", one)
    (one / "dog.npy").write_bytes(b"\x93NUMPY garbage")
    assert "dog.npy" in _bad_input(capsys, "subset", one, tmp_path / "o", "--per-class", 2)


def test_bad_checkpoint_and_inputs_exit_3(shapes_checkpoint, tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert "junk.pt" in _bad_input(capsys, "evaluate", tmp_path / "junk.pt", "--data", tmp_path)
    assert "junk.pt" in _bad_input(capsys, "export", tmp_path / "junk.pt")
    other = tmp_path / "other"
    other.mkdir()
    for name in ("box", "cat"):
        np.save(other / f"{name}.npy", np.zeros((5, 784), np.uint8))
    assert "cross" in _bad_input(capsys, "evaluate", shapes_checkpoint, "--data", other)
    (tmp_path / "notes.txt").write_text("hi")
    assert "notes.txt" in _bad_input(capsys, "predict", shapes_checkpoint, tmp_path / "notes.txt")
    (tmp_path / "fake.png").write_text("hi")
    assert "fake.png" in _bad_input(capsys, "predict", shapes_checkpoint, tmp_path / "fake.png")
    with pytest.raises(SystemExit) as info:  # a usage error: exit 2
        main(["train", "--data", str(other), "--recipe", "magic"])
    assert info.value.code == 2 and "unknown recipe" in capsys.readouterr().err


def test_unreachable_download_source_exits_4(tmp_path, capsys):
    code, _, err = run(capsys, "download", "--classes", "cat", "--per-class", 3, "--out", tmp_path,
                       "--source", "http://127.0.0.1:9/none", "--quiet")
    assert code == EXIT_DOWNLOAD and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_unknown_class_suggests_the_closest(tmp_path, capsys):
    code, _, err = run(capsys, "download", "--classes", "smiley", "--out", tmp_path, "--quiet")
    assert code == EXIT_DOWNLOAD and "smiley face" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "many"])
    assert info.value.code == 2


def test_train_learner_recipe_caps_drawings_per_class_unless_told(shapes_dir, tmp_path, capsys, monkeypatch):
    from quicksketch_lib import recipes
    from quicksketch_lib.checkpoint import load_checkpoint

    monkeypatch.setitem(recipes.RECIPE_PER_CLASS, "learner", 20)  # 2000 in the real recipe
    ckpt = tmp_path / "learner.pt"
    args = ("train", "--data", shapes_dir, "--recipe", "learner", "--epochs", 1, "--batch-size", 16,
            "--out", ckpt, "--quiet")
    assert run(capsys, *args)[0] == EXIT_OK
    saved = load_checkpoint(ckpt)
    assert saved.data["counts"] == [20, 20, 20] and saved.train_config["recipe"] == "learner"
    assert run(capsys, *args, "--per-class", 30)[0] == EXIT_OK
    assert load_checkpoint(ckpt).data["counts"] == [30, 30, 30]


def test_train_set_reaches_any_config_field(shapes_dir, tmp_path, capsys):
    from quicksketch_lib.checkpoint import load_checkpoint

    ckpt = tmp_path / "m.pt"
    code, _, err = run(capsys, "train", "--data", shapes_dir, "--epochs", 1, "--max-batches", 1, "--out", ckpt,
                       "--quiet", "--set", "label_smoothing=0.1", "--set", "tta-flip=true", "--set", "epochs=2",
                       "--set", "schedule=cosine")
    config = load_checkpoint(ckpt).train_config
    assert code == EXIT_OK, err
    assert (config["label_smoothing"], config["tta_flip"], config["epochs"], config["schedule"]) == (0.1, True, 2,
                                                                                                     "cosine")


def test_train_set_reaches_the_model_config_and_resume_keeps_it(shapes_dir, tmp_path, capsys):
    from quicksketch_lib.checkpoint import load_checkpoint

    ckpt = tmp_path / "small.pt"
    args = ("train", "--data", shapes_dir, "--epochs", 1, "--max-batches", 1, "--out", ckpt, "--quiet")
    code, _, err = run(capsys, *args, "--set", "model.channels=8,16,16", "--set", "model.hidden=32")
    saved = load_checkpoint(ckpt)
    assert code == EXIT_OK, err
    assert (saved.model_config.channels, saved.model_config.hidden, saved.model_config.num_classes) == \
        ((8, 16, 16), 32, 3)
    code, _, err = run(capsys, *args[:4], 2, *args[5:], "--resume")  # its own model, without saying it again
    assert code == EXIT_OK and load_checkpoint(ckpt).model_config == saved.model_config, err
    code, _, err = run(capsys, *args[:4], 3, *args[5:], "--resume", "--set", "model.hidden=64")
    assert code == EXIT_BAD_INPUT and "cannot resume with another model (hidden 32 -> 64" in err


@pytest.mark.parametrize("setting", ["no_such_field=1", "lr=fast", "tta_flip=maybe", "lr"])
def test_train_set_rejects_unknown_fields_and_bad_values_with_usage_exit(setting, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--set", setting])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--set" in err
    if "=" not in setting or setting.startswith("no_such"):
        assert "label_smoothing" in err and "max_batches" in err  # the fields are listed


def test_main_leaves_the_warning_machinery_as_it_found_it(shapes_dir, capsys):
    import warnings

    before = (warnings.formatwarning, warnings.showwarning)
    run(capsys, "doctor")
    run(capsys, "train", "--data", shapes_dir / "missing", "--epochs", 1)
    assert (warnings.formatwarning, warnings.showwarning) == before


def test_help_lists_the_exit_code_table(capsys):
    from quicksketch_lib.cli import EXIT_CODES

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(f"{code} {meaning}" in out for code, meaning in EXIT_CODES.items())


# --------------------------------------------------------------------------- the shipped pretrained model
def _clock_png(path):
    """A clock drawn dark on white, as a person might save one from a paint program."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (256, 256), 255)
    pen = ImageDraw.Draw(im)
    pen.ellipse((28, 28, 228, 228), outline=0, width=8)
    pen.line((128, 128, 128, 60), fill=0, width=8)
    pen.line((128, 128, 180, 150), fill=0, width=8)
    im.save(path)
    return path


def test_predict_and_export_pretrained(tmp_path, monkeypatch, capsys):
    drawing = _clock_png(tmp_path / "clock.png")
    code, out, _ = run(capsys, "predict", "pretrained", drawing, "--top-k", 3)
    assert code == EXIT_OK and out.startswith("clock.png: clock ")

    monkeypatch.chdir(tmp_path)  # the export's default goes to ./models, never into the package
    code, out, _ = run(capsys, "export", "pretrained")
    onnx_file = tmp_path / "models" / "pretrained.onnx"
    assert code == EXIT_OK and onnx_file.is_file() and "OK" in out
    assert not list(PRETRAINED_PATH.parent.glob("*.onnx"))
    code, out, _ = run(capsys, "predict", onnx_file, drawing, "--json")
    assert code == EXIT_OK and json.loads(out)[0]["top_k"][0]["class"] == "clock"


def test_evaluate_pretrained_uses_its_held_out_split(quickdraw_dir, tmp_path, capsys):
    # the README's figure: `quicksketch evaluate pretrained --data data/quickdraw` (95.28%)
    code, out, _ = run(capsys, "evaluate", "pretrained", "--data", quickdraw_dir, "--json", tmp_path / "e.json")
    report = json.loads((tmp_path / "e.json").read_text())
    assert code == EXIT_OK and report["subset"].startswith("held-out split") and report["n"] == 4000
    assert report["accuracy"] >= 0.94 and report["classes"] == list(THE_TEN)


def test_pretrained_on_other_classes_is_a_clear_error(shapes_dir, capsys):
    assert "no file for class" in _bad_input(capsys, "evaluate", "pretrained", "--data", shapes_dir)


def test_help_imports_no_torch():
    """`quicksketch --help` and every `quicksketch COMMAND --help` start like a tool: no torch, numpy,
    matplotlib or onnx (a command imports what it needs when it runs)."""
    code = ("import sys\nfrom quicksketch_lib.cli import main\n"
            f"for argv in [['--help']] + [[name, '--help'] for name in {SUBCOMMANDS!r}]:\n"
            "    try:\n        main(argv)\n    except SystemExit as exc:\n        assert exc.code == 0, argv\n"
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'onnx', 'onnxruntime', 'PIL') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
