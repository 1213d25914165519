import json

import numpy as np
import onnx
import pytest

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.export import PARITY_TOLERANCE, OnnxModel, export_onnx
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
