"""Export a checkpoint to one self-contained ONNX file, checked against PyTorch.

The file has a dynamic batch axis (input ``image``: float ``(B, 1, 28, 28)``,
normalised; output ``logits``: ``(B, num_classes)``) and carries the class names
and normalisation in its metadata, so onnxruntime needs nothing else. Every
export is verified: onnxruntime's logits must match PyTorch's within
``PARITY_TOLERANCE`` on real-looking inputs, or the export fails.

:func:`export_int8` adds an int8 model (``X.int8.onnx``, same input, output and
metadata): static quantisation calibrated on the checkpoint's held-out drawings,
checked by its top-1 agreement with the fp32 model on held-out drawings it was not
calibrated on (at least ``INT8_MIN_AGREEMENT``, or the export fails). Its speed:
README "Speed" and ``quicksketch bench``.
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
from .data import normalize_batch
from .errors import CheckpointError, QuickSketchError
from .files import atomic_path, check_output_file, file_sha256, scratch_path, shown_path
from .inference import CHECKPOINT_SHA_KEY, OnnxModel
from .locations import pretrained_name, pretrained_onnx

PARITY_TOLERANCE = 1e-4
OPSET = 18
MIN_OPSET = 18  # torch's exporter writes 18 and newer; older opsets would need a conversion
INT8_MIN_AGREEMENT = 0.95  # top-1 agreement of the int8 model with fp32 on held-out drawings
# Fewer drawings than these is refused. The check sets the number: an agreement measured on
# fewer than 100 drawings cannot tell 95 % from 90 % (a model that agrees with fp32 on 90 % of
# drawings passes a 100-drawing check 6 % of the time, a 10-drawing one 35 %, the 2-drawing
# check of a one-drawing-per-class folder 81 %). Calibration itself needed few drawings for the
# shipped model (scripts/int8_calibration.py: 99.1 % agreement after 1, 99.05 % after 100), but
# one model is no proof, and the drawings are split in halves anyway: 100 each.
INT8_MIN_CALIBRATION = 100
INT8_MIN_CHECK = 100


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float
    opset: int
    size_bytes: int

    def describe(self) -> str:
        return (f"wrote {shown_path(self.path)} ({self.size_bytes / 1e6:.1f} MB, opset {self.opset}); "
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
        "quicksketch_val_accuracy": "" if ckpt.metrics.get("val_accuracy") is None else str(ckpt.metrics["val_accuracy"]),
        # Predictor averages each drawing with its mirror image when the checkpoint was
        # trained to be evaluated that way (test-time flip)
        "quicksketch_tta_flip": "true" if ckpt.tta_flip else "false",
        # so `predict --backend auto` uses this file only beside the checkpoint it came from
        CHECKPOINT_SHA_KEY: file_sha256(ckpt.path) if ckpt.path and Path(ckpt.path).is_file() else "",
    }


def default_onnx_path(ckpt: Checkpoint) -> Path:
    """Where an export goes unless told: beside the checkpoint (``m.pt`` -> ``m.onnx``), except
    for the shipped pretrained models, whose exports go to ``models/<name>.onnx`` (relative
    to the current folder, like ``train``'s default) -- never into the installed package."""
    if ckpt.path is None:
        raise QuickSketchError("an export needs `out` for a checkpoint not loaded from a file")
    name = pretrained_name(ckpt.path)
    if name is not None:
        return pretrained_onnx(name)
    return Path(ckpt.path).with_suffix(".onnx")


def export_onnx(checkpoint: str | os.PathLike | Checkpoint, out: str | os.PathLike | None = None,
                opset: int = OPSET) -> ExportReport:
    """Export ``checkpoint`` to ``out`` (default: :func:`default_onnx_path`) and verify parity.

    ``checkpoint`` may be ``"pretrained"``, the shipped model of the ten classes. An
    ``opset`` the exporter cannot write is refused (no file is written)."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    out = check_output_file(Path(out) if out is not None else default_onnx_path(ckpt))  # before the work
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:  # only a model that passed its parity check replaces out
        diff = write_checked_onnx(ckpt, tmp, opset)
    return ExportReport(out, diff, opset, out.stat().st_size)


def write_checked_onnx(ckpt: Checkpoint, path: Path, opset: int = OPSET) -> float:
    """Write ``ckpt`` as ONNX (with its metadata) to ``path`` as it is (no temporary file) and
    return the parity check's max |logit difference|; raises when the check fails."""
    import onnx

    model = ckpt.build_model("cpu")
    proto = _export_proto(model, opset)
    for key, value in onnx_metadata(ckpt).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return parity_check(model, path)


def written_opset(proto) -> int:
    """The ONNX (default domain) opset a model proto declares."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)


def _export_proto(model: torch.nn.Module, opset: int):
    """The ONNX proto of ``model`` at exactly ``opset``; refused when the exporter wrote another."""
    example = torch.zeros(2, 1, 28, 28)
    # the exporter's chatter (e.g. "torchvision is not installed"), and onnxscript's traceback
    # when it cannot convert to the opset asked for (refused below in one line)
    logs = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in logs]
    for log, quiet in zip(logs, (logging.ERROR, logging.CRITICAL)):
        log.setLevel(quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model, (example,), input_names=["image"], output_names=["logits"], opset_version=opset,
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=65536)}},
                dynamo=True, external_data=False, verbose=False)
        finally:
            for log, level in zip(logs, levels):
                log.setLevel(level)
    proto = program.model_proto
    if written_opset(proto) != opset:
        raise QuickSketchError(f"the ONNX exporter cannot write opset {opset} for this model (it wrote "
                               f"{written_opset(proto)}); use --opset {OPSET} (supported: {MIN_OPSET} and newer)")
    return proto


@dataclass
class Int8Report:
    path: Path
    agreement: float  # top-1 agreement with the fp32 model on `checked` held-out drawings
    checked: int
    calibrated_on: int
    calibration_source: str
    size_bytes: int

    def describe(self) -> str:
        return (f"wrote {shown_path(self.path)} ({self.size_bytes / 1e6:.1f} MB, int8, calibrated on "
                f"{self.calibrated_on} {self.calibration_source}); top-1 agreement with fp32 "
                f"{self.agreement:.1%} on {self.checked} other {self.calibration_source} "
                f"(>= {INT8_MIN_AGREEMENT:.0%}: OK)")


def quantize_int8(onnx_path: str | os.PathLike, calibration: np.ndarray,
                  out: str | os.PathLike | None = None) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights, uint8 activations) of an
    exported model with onnxruntime, calibrated on ``calibration`` (normalised
    ``(N, 1, 28, 28)`` float32); the metadata (class names ...) is carried over.

    The int8 convolutions use the CPU's VNNI instructions where it has them.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path = Path(onnx_path)
    out = Path(out) if out else onnx_path.with_suffix(".int8.onnx")
    batches = [{"image": np.ascontiguousarray(calibration[i:i + 32], dtype=np.float32)}
               for i in range(0, len(calibration), 32)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)
    with scratch_path(out) as pre, atomic_path(out) as tmp:  # the pre-processed model: a scratch file
        quant_pre_process(str(onnx_path), str(pre))
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        meta = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in {**meta, "quicksketch_quantization": "int8 static QDQ, per-channel weights"}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return out


def held_out_drawings(ckpt: Checkpoint, data_dir: str | os.PathLike) -> tuple[np.ndarray, str]:
    """uint8 ``(N, 784)`` drawings of the checkpoint's classes that it did not train on:
    its recorded held-out split when ``data_dir`` holds the drawings it was trained on,
    else every drawing there (said in the returned description)."""
    from .evaluation import evaluation_set, held_out_only, load_for_checkpoint

    images, _, subset = evaluation_set(ckpt, load_for_checkpoint(ckpt, data_dir))
    source = "held-out drawings" if held_out_only(subset) else f"drawings from {shown_path(data_dir)} (not the recorded split)"
    return np.asarray(images), source


def export_int8(checkpoint: str | os.PathLike | Checkpoint, data_dir: str | os.PathLike | None = None,
                out: str | os.PathLike | None = None, calibrate: int = 512, check: int = 2000,
                opset: int = OPSET, seed: int = 0, fp32: str | os.PathLike | None = None) -> Int8Report:
    """Export ``checkpoint`` as int8 ONNX (default: :func:`default_onnx_path` with ``.int8.onnx``).

    Calibrated on ``calibrate`` of the checkpoint's held-out drawings from ``data_dir``
    (default: the folder it was trained on), checked on up to ``check`` others.
    ``fp32``: this checkpoint's :func:`export_onnx` file when already written (else a
    temporary one is exported).
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    data_dir = data_dir or ckpt.data.get("root") or None
    if not data_dir or not Path(data_dir).is_dir():
        raise QuickSketchError("int8 export calibrates on real drawings: pass --data with the folder "
                               f"the model was trained on{f' ({data_dir} is not there)' if data_dir else ''}")
    out = Path(out) if out is not None else default_onnx_path(ckpt).with_suffix(".int8.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, source = held_out_drawings(ckpt, data_dir)
    if len(rows) < INT8_MIN_CALIBRATION + INT8_MIN_CHECK:
        raise QuickSketchError(
            f"{data_dir}: int8 export needs at least {INT8_MIN_CALIBRATION + INT8_MIN_CHECK} drawings the model "
            f"was not trained on ({INT8_MIN_CALIBRATION} to calibrate on, {INT8_MIN_CHECK} to check against "
            f"fp32) and found {len(rows)} ({source}); pass --data with more drawings of its classes")
    order = np.random.default_rng(seed).permutation(len(rows))
    n_cal = min(calibrate, len(rows) // 2)
    cal, chk = rows[order[:n_cal]], rows[order[n_cal:n_cal + check]]
    to_input = lambda r: normalize_batch(torch.from_numpy(np.ascontiguousarray(r))).numpy()  # noqa: E731
    with scratch_path(out) as scratch:  # a killed export leaves no folder; the next one removes the file
        if fp32 is None:
            write_checked_onnx(ckpt, scratch, opset)
            fp32 = scratch
        quantize_int8(fp32, to_input(cal), out)
        agreement = float((OnnxModel(out).logits(to_input(chk)).argmax(1)
                           == OnnxModel(fp32).logits(to_input(chk)).argmax(1)).mean())
    if agreement < INT8_MIN_AGREEMENT:
        out.unlink(missing_ok=True)
        raise QuickSketchError(f"int8 export failed its check: top-1 agreement with fp32 {agreement:.1%} "
                               f"< {INT8_MIN_AGREEMENT:.0%} on {len(chk)} drawings; the file was not written")
    return Int8Report(out, agreement, len(chk), n_cal, source, out.stat().st_size)


def parity_check(model: torch.nn.Module, onnx_path: str | os.PathLike, n: int = 16, seed: int = 0) -> float:
    """Max |logit difference| between PyTorch and onnxruntime; raises above the tolerance."""
    rng = np.random.default_rng(seed)
    u8 = (rng.random((n, 784)) < 0.15).astype(np.uint8) * rng.integers(60, 256, (n, 784), dtype=np.uint8)
    x = normalize_batch(torch.from_numpy(u8))
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = OnnxModel(onnx_path).logits(x.numpy())
    diff = float(np.abs(expected - got).max())
    if not diff <= PARITY_TOLERANCE:
        Path(onnx_path).unlink(missing_ok=True)
        raise QuickSketchError(f"ONNX export failed its parity check: max |logit difference| {diff:.2e} "
                               f"> {PARITY_TOLERANCE:g}; the file was not written")
    return diff
