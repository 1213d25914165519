"""Export a checkpoint to one self-contained ONNX file, checked against PyTorch.

The file has a dynamic batch axis (input ``image``: float ``(B, 1, 28, 28)``,
normalised; output ``logits``: ``(B, num_classes)``) and carries the class names
and normalisation in its metadata, so onnxruntime needs nothing else. Every
export is verified: onnxruntime's logits must match PyTorch's within
``PARITY_TOLERANCE`` on real-looking inputs, or the export fails.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .errors import QuickSketchError

PARITY_TOLERANCE = 1e-4
OPSET = 18


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float
    opset: int
    size_bytes: int

    def describe(self) -> str:
        return (f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB, opset {self.opset}); "
                f"onnxruntime vs PyTorch max |logit difference| = {self.max_abs_diff:.2e} "
                f"(<= {PARITY_TOLERANCE:g}: OK)")


def onnx_metadata(ckpt: Checkpoint) -> dict[str, str]:
    return {
        "quicksketch_classes": json.dumps(list(ckpt.classes)),
        "quicksketch_normalization": json.dumps({"mean": ckpt.normalization.get("mean", 0.5),
                                                 "std": ckpt.normalization.get("std", 0.5)}),
        "quicksketch_input": "image: float32 (B, 1, 28, 28) = (uint8 pixels / 255 - mean) / std, "
                             "0 = background",
        "quicksketch_model_config": json.dumps(ckpt.model_config.to_dict()),
        "quicksketch_val_accuracy": str(ckpt.metrics.get("val_accuracy", "")),
    }


def export_onnx(checkpoint: str | os.PathLike | Checkpoint, out: str | os.PathLike | None = None,
                opset: int = OPSET) -> ExportReport:
    """Export ``checkpoint`` to ``out`` (default: next to it, ``.onnx``) and verify parity."""
    import onnx

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if out is None:
        if ckpt.path is None:
            raise QuickSketchError("export_onnx needs `out` for a checkpoint not loaded from a file")
        out = Path(ckpt.path).with_suffix(".onnx")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = ckpt.build_model("cpu")
    example = torch.zeros(2, 1, 28, 28)
    tmp = out.with_name("." + out.name + ".tmp")
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # the exporter's chatter (e.g. "torchvision is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model, (example,), input_names=["image"], output_names=["logits"], opset_version=opset,
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=65536)}},
                dynamo=True, external_data=False, verbose=False)
        finally:
            onnx_log.setLevel(level)
    proto = program.model_proto
    for key, value in onnx_metadata(ckpt).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp))
    diff = parity_check(model, tmp)
    os.replace(tmp, out)
    return ExportReport(out, diff, opset, out.stat().st_size)


def parity_check(model: torch.nn.Module, onnx_path: str | os.PathLike, n: int = 16, seed: int = 0) -> float:
    """Max |logit difference| between PyTorch and onnxruntime; raises above the tolerance."""
    rng = np.random.default_rng(seed)
    u8 = (rng.random((n, 784)) < 0.15).astype(np.uint8) * rng.integers(60, 256, (n, 784), dtype=np.uint8)
    x = torch.from_numpy(u8.reshape(n, 1, 28, 28).astype(np.float32) / 127.5 - 1.0)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = OnnxModel(onnx_path).logits(x.numpy())
    diff = float(np.abs(expected - got).max())
    if not diff <= PARITY_TOLERANCE:
        Path(onnx_path).unlink(missing_ok=True)
        raise QuickSketchError(f"ONNX export failed its parity check: max |logit difference| {diff:.2e} "
                               f"> {PARITY_TOLERANCE:g}; the file was not written")
    return diff


class OnnxModel:
    """An exported model in onnxruntime, with the class names from its metadata."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.classes = json.loads(meta.get("quicksketch_classes", "[]"))
        self.metadata = meta

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"image": np.ascontiguousarray(x, dtype=np.float32)})[0]
