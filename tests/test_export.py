import json

import numpy as np
import onnx
import pytest

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.errors import QuickSketchError
from quicksketch_lib.export import PARITY_TOLERANCE, export_int8, export_onnx
from quicksketch_lib.inference import OnnxModel
from quicksketch_lib.inference import Predictor

from conftest import QUICKDRAW, needs_shared_data


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
@needs_shared_data
def test_int8_export_on_real_drawings_agrees_with_fp32(tmp_path):
    """The shipped ten-class model, calibrated on 256 of its held-out drawings and checked on
    1000 others: same metadata, a quarter of the size, top-1 as fp32's on nearly all of them,
    and the same held-out accuracy within a point.

    A fully trained model on purpose: a briefly trained one sits near the 95 % bar, and which
    side it lands on depends on the CPU that trained it (CI saw 91-95 %)."""
    from quicksketch_lib.evaluation import evaluation_set, load_for_checkpoint

    ckpt = load_checkpoint("pretrained")
    report = export_int8(ckpt, QUICKDRAW, out=tmp_path / "ten.int8.onnx", calibrate=256, check=1000)
    assert report.calibration_source == "held-out drawings"
    assert (report.calibrated_on, report.checked) == (256, 1000)
    assert report.agreement >= 0.97  # measured 98.9 % (AVX2 EPYC, 512/2000)
    int8 = Predictor.from_onnx(report.path)
    assert int8.classes == ckpt.classes
    meta = OnnxModel(report.path).metadata
    assert "int8" in meta["quicksketch_quantization"] and "quicksketch_model_config" in meta
    fp32 = export_onnx(ckpt, tmp_path / "ten.onnx")
    assert report.size_bytes < fp32.size_bytes / 3
    images, labels, _ = evaluation_set(ckpt, load_for_checkpoint(ckpt, QUICKDRAW))
    images, labels = images[::2], labels[::2]  # 2,000 of its 4,000 held-out drawings: enough for a point
    acc = {name: float((p.predict_proba(images).argmax(1) == labels).mean())
           for name, p in (("int8", int8), ("fp32", Predictor.from_onnx(fp32.path)))}
    print(f"held-out accuracy on {len(labels)} drawings: fp32 {acc['fp32']:.2%}, int8 {acc['int8']:.2%}")
    assert abs(acc["int8"] - acc["fp32"]) <= 0.01


def test_int8_export_needs_drawings_to_calibrate_on(shapes_checkpoint, tmp_path):
    ckpt = load_checkpoint(shapes_checkpoint)
    ckpt.data = {**ckpt.data, "root": str(tmp_path / "gone")}
    with pytest.raises(QuickSketchError, match="pass --data"):
        export_int8(ckpt, out=tmp_path / "x.int8.onnx")
    assert not (tmp_path / "x.int8.onnx").exists()


def _new_shapes(folder, per_class: int):
    """Drawings of the shapes model's classes it was not trained on (another seed)."""
    from conftest import make_shapes

    folder.mkdir()
    for name, arr in make_shapes(per_class, seed=7).items():
        np.save(folder / f"{name}.npy", arr)
    return folder


def test_int8_export_refuses_too_few_drawings(shapes_checkpoint, tmp_path):
    """18 held-out drawings (or 60 new ones) cannot calibrate and check an int8 model: refused,
    nothing written; 200 new ones can."""
    from quicksketch_lib.export import INT8_MIN_CALIBRATION, INT8_MIN_CHECK

    assert INT8_MIN_CALIBRATION + INT8_MIN_CHECK == 200
    with pytest.raises(QuickSketchError, match="needs at least 200 drawings .* found 18 .held-out drawings"):
        export_int8(shapes_checkpoint, out=tmp_path / "a.int8.onnx")
    with pytest.raises(QuickSketchError, match="found 60"):
        export_int8(shapes_checkpoint, _new_shapes(tmp_path / "few", 20), out=tmp_path / "a.int8.onnx")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*"))


def test_cli_export_int8_writes_both_files_and_nothing_else(shapes_checkpoint, tmp_path, capsys):
    from quicksketch_lib.cli import main

    out = tmp_path / "out" / "shapes.onnx"
    data = _new_shapes(tmp_path / "new", 70)
    assert main(["export", str(shapes_checkpoint), "--out", str(out), "--int8", "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["shapes.int8.onnx", "shapes.onnx"]
    assert "int8" in printed and "calibrated on 105" in printed and "top-1 agreement with fp32" in printed
    assert Predictor.from_onnx(out.parent / "shapes.int8.onnx").classes == ["box", "cross", "ring"]


def test_int8_scratch_files_of_a_killed_export_are_removed_by_the_next(shapes_checkpoint, tmp_path):
    """A killed export leaves at most a scratch FILE named after the output and its (dead)
    process; the next export removes it and writes no folder (it used to leave tmpXXXX/)."""
    out = tmp_path / "out" / "m.int8.onnx"
    out.parent.mkdir()
    stale = out.parent / ".m.int8.onnx.999999999.abcd1234.tmp"  # no such process
    stale.write_bytes(b"half an onnx file")
    export_int8(shapes_checkpoint, _new_shapes(tmp_path / "new", 70), out=out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.int8.onnx"]


# --------------------------------------------------------------------------- an ONNX file's class list
def _with_classes(exported, tmp_path, value):
    proto = onnx.load(str(exported.path))
    for prop in proto.metadata_props:
        if prop.key == "quicksketch_classes":
            prop.value = value
    path = tmp_path / "edited.onnx"
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("value, message", [
    (json.dumps(["box", "cross", "ring", "star"]), "lists 4 class names but the model has 3 outputs"),
    (json.dumps(["box", "cross"]), "lists 2 class names but the model has 3 outputs"),
    (json.dumps("abc"), "no class list"),
    ("box,cross,ring", "no class list"),
    (json.dumps(["box", "box", "ring"]), "more than once"),
    (json.dumps(["box", 3, "ring"]), "no class list"),
])
def test_onnx_class_lists_that_do_not_fit_are_refused(exported, tmp_path, value, message):
    from quicksketch_lib.errors import CheckpointError

    with pytest.raises(CheckpointError, match=message):
        OnnxModel(_with_classes(exported, tmp_path, value))


def test_export_summaries_show_paths_inside_the_checkout_relative(tmp_path):
    """What `quicksketch export` prints (notebook 04 commits it): no machine's absolute path."""
    from quicksketch_lib.export import ExportReport, Int8Report
    from quicksketch_lib.files import CHECKOUT

    inside = CHECKOUT / "models" / "pretrained.onnx"
    assert ExportReport(inside, 1e-6, 18, 10**6).describe().startswith("wrote models/pretrained.onnx (")
    report = Int8Report(tmp_path / "x.int8.onnx", 0.99, 2000, 512, "held-out drawings", 10**6)
    assert str(tmp_path) not in report.describe()
