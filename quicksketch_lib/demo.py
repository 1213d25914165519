"""The main job behind ``make demo``: data -> short training run -> evaluate -> export -> predict,
then the shipped pretrained model answering drawings of real Quick Draw classes.

Data comes from ``data/quickdraw`` when present, else the ten classes are
downloaded when Google's server is reachable, else the offline default
(synthetic doodles) is generated -- and the demo says which. The last step
needs neither data nor network: the pretrained model of the ten classes ships
with the package, and the drawings it answers are made of strokes written below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_folder
from .download import choose_demo_data
from .locations import DEMO_CHECKPOINT


def _circle(cx: float, cy: float, r: float, start: float = 0.0, sweep: float = 2 * np.pi) -> list:
    t = start + np.linspace(0.0, sweep, 24)
    return [list(cx + r * np.cos(t)), list(cy + r * np.sin(t))]


def _line(*points: tuple[float, float]) -> list:
    return [[x for x, _ in points], [y for _, y in points]]


def sample_drawings() -> dict[str, list]:
    """Six drawings of classes the pretrained model knows, as strokes (``[xs, ys]``, y down),
    drawn the way a hurried person might -- made here, so the demo needs no data."""
    petals = [_circle(128 + 50 * np.cos(a), 80 + 50 * np.sin(a), 26) for a in np.arange(6) * np.pi / 3]
    return {
        "clock": [_circle(128, 128, 110), _line((128, 128), (128, 50)), _line((128, 128), (185, 150))],
        "house": [_line((40, 120), (40, 250), (216, 250), (216, 120), (40, 120)),
                  _line((30, 125), (128, 20), (226, 125)), _line((105, 250), (105, 180), (150, 180), (150, 250))],
        "flower": [_circle(128, 80, 25), *petals, _line((128, 130), (128, 250)), _line((128, 200), (170, 170))],
        "bicycle": [_circle(60, 170, 50), _circle(200, 170, 50), _line((60, 170), (110, 100), (180, 100), (200, 170)),
                    _line((110, 100), (130, 170), (60, 170)), _line((130, 170), (180, 100)),
                    _line((100, 80), (125, 80)), _line((175, 100), (170, 70), (195, 65))],
        "banana": [_circle(128, 40, 200, np.pi * 0.6, np.pi * 0.35), _circle(128, 0, 230, np.pi * 0.6, np.pi * 0.33)],
        "book": [_line((20, 40), (128, 60), (236, 40), (236, 220), (128, 240), (20, 220), (20, 40)),
                 _line((128, 60), (128, 240))],
    }


def predict_with_pretrained() -> int:
    """The pretrained model of the ten real classes answers :func:`sample_drawings`;
    returns how many it got right."""
    from .checkpoint import load_checkpoint
    from .locations import PRETRAINED
    from .inference import Predictor
    from .rasterize import rasterize_strokes

    ckpt = load_checkpoint(PRETRAINED)
    print(f"The model answering now is the PRETRAINED one that ships with QuickSketch ({ckpt.path.name}): "
          f"{len(ckpt.classes)} real Quick Draw classes, {ckpt.metrics['val_accuracy']:.2%} held-out "
          "(README 'Pretrained model'). Drawings made of strokes in quicksketch_lib/demo.py:")
    predictor = Predictor.from_model(ckpt.build_model(), ckpt.classes, ckpt.tta_flip)
    right = 0
    for truth, strokes in sample_drawings().items():
        guesses = predictor.predict(rasterize_strokes(strokes), top_k=3)
        right += guesses[0][0] == truth
        mark = "ok " if guesses[0][0] == truth else "MISS"
        print(f"  [{mark}] drawn {truth:<10} guess " + ", ".join(f"{c} {p:.0%}" for c, p in guesses))
    print("Try your own: quicksketch predict pretrained drawing.png")
    return right


def run_demo(epochs: int = 3, per_class: int = 1500, out: str | Path = DEMO_CHECKPOINT,
             offline: bool = False) -> dict:
    """Run the whole pipeline briefly and print where everything went."""
    from .evaluation import evaluate
    from .plots import save_confusion_png
    from .export import export_onnx
    from .inference import Predictor
    from .device import set_seed
    from .model import ModelConfig, build_model
    from .training import TrainConfig, fit, history_path

    source = choose_demo_data(offline, per_class)
    print(source.describe())
    data = load_folder(source.path, per_class=per_class)
    print(data.describe())
    set_seed(0)
    model = build_model(ModelConfig(), data.classes)
    print(f"\n1/5 training SketchCNN ({model.num_parameters():,} parameters) for {epochs} epochs ...")
    result = fit(model, data, TrainConfig(epochs=epochs), out=out)

    print("\n2/5 evaluating on the held-out split ...")
    report = evaluate(result.checkpoint, data)
    out_path = Path(out)
    json_path = report.save_json(out_path.with_suffix(".eval.json"))
    png_path = save_confusion_png(report, out_path.with_suffix(".confusion.png"))
    print(f"accuracy {report.accuracy:.2%}, top-3 {report.top3_accuracy:.2%} on {report.n:,} held-out drawings")

    print("\n3/5 exporting to ONNX ...")
    export = export_onnx(out_path, out_path.with_suffix(".onnx"))
    print(export.describe())

    print("\n4/5 predicting a few held-out drawings with onnxruntime (the model just trained) ...")
    predictor = Predictor.from_checkpoint(out_path, backend="onnx")
    val_idx = result.checkpoint.split["val_indices"].numpy()
    picks = np.random.default_rng(0).choice(val_idx, size=min(5, len(val_idx)), replace=False)
    for i, guesses in zip(picks, predictor.predict(data.images[picks], top_k=3)):
        truth = data.classes[data.labels[i]]
        mark = "ok " if guesses[0][0] == truth else "MISS"
        print(f"  [{mark}] true {truth:<12} guess " + ", ".join(f"{c} {p:.0%}" for c, p in guesses))

    where = {"checkpoint": out_path, "history": history_path(out_path), "metrics": json_path,
             "confusion": png_path, "onnx": export.path}
    print("\nFiles written:")
    for k, v in where.items():
        print(f"  {k:<10} {v}")
    if data.synthetic:
        print("\nThose were SYNTHETIC doodles. For real Quick Draw data: `quicksketch download` "
              "(online) or put <class>.npy files in data/quickdraw -- see README 'Real data'.")

    print("\n5/5 the pretrained model of the ten real Quick Draw classes ...")
    right = predict_with_pretrained()
    return {"accuracy": report.accuracy, "data": str(source.path), "synthetic": data.synthetic,
            "pretrained_right": right, **where}
