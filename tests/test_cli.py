"""The command line end to end: every subcommand, and a tested exit code for each bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from quicksketch_lib.cli import EXIT_BAD_INPUT, EXIT_DOWNLOAD, EXIT_OK, main

SUBCOMMANDS = ["doctor", "subset", "train", "evaluate", "predict", "export", "download", "demo"]


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
