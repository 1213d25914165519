import json

import numpy as np
import onnx
import pytest

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.errors import QuickSketchError
from quicksketch_lib.export import INT8_MIN_AGREEMENT, PARITY_TOLERANCE, OnnxModel, export_int8, export_onnx
from quicksketch_lib.inference import Predictor


@pytest.fixture(scope="module")
def exported(shapes_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "shapes.onnx"
    return export_onnx(shapes_checkpoint, out)


def test_export_is_one_verified_self_describing_file(exported, shapes_checkpoint):
    assert exported.max_abs_diff <= PARITY_TOLERANCE
    assert exported.path.exists() and not exported.path.with_suffix(".onnx.data").exists()
    proto = onnx.load(str(exported.path))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["quicksketch_classes"]) == ["box", "cross", "ring"]
    assert json.loads(meta["quicksketch_normalization"]) == {"mean": 0.5, "std": 0.5}


def test_dynamic_batch_axis_and_parity_on_real_batches(exported, shapes_checkpoint):
    ckpt = load_checkpoint(shapes_checkpoint)
    data = load_folder(ckpt.data["root"])
    torch_pred = Predictor.from_checkpoint(shapes_checkpoint, backend="torch")
    onnx_pred = Predictor.from_onnx(exported.path)
    for n in (1, 7, 64):
        a = torch_pred.predict_proba(data.images[:n])
        b = onnx_pred.predict_proba(data.images[:n])
        assert a.shape == b.shape == (n, 3) and np.abs(a - b).max() < 1e-4
    assert onnx_pred.classes == ckpt.classes and onnx_pred.backend == "onnxruntime"


def test_onnx_model_reports_classes(exported):
    assert OnnxModel(exported.path).classes == ["box", "cross", "ring"]


# --------------------------------------------------------------------------- int8
def test_int8_export_on_real_drawings_agrees_with_fp32(ten_class_model, tmp_path):
    """Calibrated on half of the checkpoint's 500 held-out drawings, checked on the other half:
    same metadata, a quarter of the size, top-1 as fp32's on (nearly) all of them, and
    the same held-out accuracy within a point."""
    path, result, data = ten_class_model
    report = export_int8(path, out=tmp_path / "ten.int8.onnx")  # data folder: the recorded one
    assert report.calibration_source == "held-out drawings"
    assert report.calibrated_on == report.checked == 250
    assert report.agreement >= max(INT8_MIN_AGREEMENT, 0.97)
    int8 = Predictor.from_onnx(report.path)
    assert int8.classes == data.classes
    meta = OnnxModel(report.path).metadata
    assert "int8" in meta["quicksketch_quantization"] and "quicksketch_model_config" in meta
    fp32 = export_onnx(path, tmp_path / "ten.onnx")
    assert report.size_bytes < fp32.size_bytes / 3
    val = np.sort(load_checkpoint(path).split["val_indices"].numpy())
    images, labels = data.images[val], data.labels[val]
    acc = {name: float((p.predict_proba(images).argmax(1) == labels).mean())
           for name, p in (("int8", int8), ("fp32", Predictor.from_onnx(fp32.path)))}
    print(f"held-out accuracy fp32 {acc['fp32']:.2%}, int8 {acc['int8']:.2%}")
    assert abs(acc["int8"] - acc["fp32"]) <= 0.01


def test_int8_export_needs_drawings_to_calibrate_on(shapes_checkpoint, tmp_path):
    ckpt = load_checkpoint(shapes_checkpoint)
    ckpt.data = {**ckpt.data, "root": str(tmp_path / "gone")}
    with pytest.raises(QuickSketchError, match="pass --data"):
        export_int8(ckpt, out=tmp_path / "x.int8.onnx")
    assert not (tmp_path / "x.int8.onnx").exists()


def test_cli_export_int8_writes_both_files(shapes_checkpoint, tmp_path, capsys):
    from quicksketch_lib.cli import main

    out = tmp_path / "shapes.onnx"
    assert main(["export", str(shapes_checkpoint), "--out", str(out), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and (tmp_path / "shapes.int8.onnx").exists()
    assert "int8" in printed and "top-1 agreement with fp32" in printed
    assert Predictor.from_onnx(tmp_path / "shapes.int8.onnx").classes == ["box", "cross", "ring"]


def test_export_summaries_show_paths_inside_the_checkout_relative(tmp_path):
    """What `quicksketch export` prints (notebook 04 commits it): no machine's absolute path."""
    from quicksketch_lib.export import ExportReport, Int8Report
    from quicksketch_lib.files import CHECKOUT

    inside = CHECKOUT / "models" / "pretrained.onnx"
    assert ExportReport(inside, 1e-6, 18, 10**6).describe().startswith("wrote models/pretrained.onnx (")
    report = Int8Report(tmp_path / "x.int8.onnx", 0.99, 2000, 512, "held-out drawings", 10**6)
    assert str(tmp_path) not in report.describe()
