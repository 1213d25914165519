"""The main job behind ``make demo``: data -> short training run -> evaluate -> export -> predict.

Data comes from ``data/quickdraw`` when present, else the ten classes are
downloaded when Google's server is reachable, else the offline default
(synthetic doodles) is generated -- and the demo says which.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .categories import THE_TEN
from .data import DataSource, find_data, load_folder, project_root



def choose_demo_data(offline: bool = False, per_class: int = 1500) -> DataSource:
    """``$QUICKSKETCH_DATA`` / data/quickdraw, else download the ten, else the offline default."""
    source = find_data(generate=False)
    if source.kind != "offline-default":
        return source
    if not offline:
        import urllib.parse

        from .download import DEFAULT_SOURCE, download_classes, is_online

        if is_online(urllib.parse.urlsplit(DEFAULT_SOURCE).hostname):
            print("No data/quickdraw yet and the network is up: downloading the ten classes "
                  f"({per_class} drawings each) ...")
            target = project_root() / "data" / "quickdraw"
            download_classes(THE_TEN, target, per_class=per_class)
            return DataSource(target, "downloaded")
        print("Offline and no data/quickdraw: using the offline default (synthetic doodles).")
    return find_data(generate=True)


def run_demo(epochs: int = 3, per_class: int = 1500, out: str = "models/demo.pt",
             offline: bool = False) -> dict:
    """Run the whole pipeline briefly and print where everything went."""
    from .evaluation import evaluate, save_confusion_png
    from .export import export_onnx
    from .inference import Predictor
    from .device import set_seed
    from .model import ModelConfig, SketchCNN
    from .training import TrainConfig, fit, history_path

    source = choose_demo_data(offline, per_class)
    print(source.describe())
    data = load_folder(source.path, per_class=per_class)
    print(data.describe())
    set_seed(0)
    model = SketchCNN(ModelConfig(num_classes=len(data.classes)))
    print(f"\n1/4 training SketchCNN ({model.num_parameters():,} parameters) for {epochs} epochs ...")
    result = fit(model, data, TrainConfig(epochs=epochs), out=out)

    print("\n2/4 evaluating on the held-out split ...")
    report = evaluate(result.checkpoint, data)
    out_path = Path(out)
    json_path = report.save_json(out_path.with_suffix(".eval.json"))
    png_path = save_confusion_png(report, out_path.with_suffix(".confusion.png"))
    print(f"accuracy {report.accuracy:.2%}, top-3 {report.top3_accuracy:.2%} on {report.n:,} held-out drawings")

    print("\n3/4 exporting to ONNX ...")
    export = export_onnx(out_path, out_path.with_suffix(".onnx"))
    print(export.describe())

    print("\n4/4 predicting a few held-out drawings with onnxruntime ...")
    predictor = Predictor.from_checkpoint(out_path, backend="onnx")
    val_idx = result.checkpoint.split["val_indices"].numpy()
    picks = np.random.default_rng(0).choice(val_idx, size=min(5, len(val_idx)), replace=False)
    for i, guesses in zip(picks, predictor.predict(data.images[picks], top_k=3)):
        truth = data.classes[data.labels[i]]
        mark = "ok " if guesses[0][0] == truth else "MISS"
        print(f"  [{mark}] true {truth:<12} guess " + ", ".join(f"{c} {p:.0%}" for c, p in guesses))

    where = {"checkpoint": out_path, "history": history_path(out_path), "metrics": json_path,
             "confusion": png_path, "onnx": export.path}
    print("\nDone. Files:")
    for k, v in where.items():
        print(f"  {k:<10} {v}")
    if data.synthetic:
        print("\nThese were SYNTHETIC doodles. For real Quick Draw data: `quicksketch download` "
              "(online) or put <class>.npy files in data/quickdraw -- see README 'Real data'.")
    return {"accuracy": report.accuracy, "data": str(source.path), "synthetic": data.synthetic, **where}
