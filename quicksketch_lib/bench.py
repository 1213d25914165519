"""``quicksketch bench``: the original recipe and QuickSketch's fast path, side by side.

One process, one data folder, one thread setting; every number comes from a
fixed number of steps after a warm-up (nothing is trained to convergence)::

    quicksketch bench --quick --json bench.json

Measured (each function is importable, e.g. for a notebook or a test):

* :func:`measure_training_throughput` -- images/s of a *trainer*: the original
  recipe as written (:func:`original_trainer`: fp32, per-sample
  :class:`~quicksketch_lib.data.QuickDrawNPY` with a transform, ``random_split``,
  ``DataLoader(batch_size=256, shuffle=True)``) or QuickSketch's default path
  (:func:`fast_loader` and :func:`fast_trainer`: built from the pieces ``fit`` is made
  of -- ``make_loaders``, ``start_run``, ``train_one_epoch`` -- so bf16 autocast where
  the hardware has it, channels_last and, on a GPU, the CUDA-graph step). :func:`compare_training` alternates the two in rounds, so a change in
  machine load hits both alike.
* :func:`measure_loading_throughput` -- images/s of a loader alone.
* :func:`measure_latency` / :func:`measure_inference` -- batch-1 latency
  (p50/p95) and batch-256 throughput, PyTorch eager and onnxruntime.
* :func:`compare_accuracy` -- held-out accuracy of the fast path vs fp32 with
  identical seeds (not part of the bench run: it trains).
* :func:`measure_stroke_to_prediction` -- the widget's path: strokes ->
  ``rasterize_strokes`` -> ``Predictor.predict``.
* :func:`peak_memory_mib` -- peak resident memory of this process.

``quicksketch bench --game`` measures instead the game's work per update (:func:`run_game_bench`:
strokes -> rasterise -> model -> phrase, p50/p95/max over real stroke drawings replayed at
5 updates a second, wall and CPU time, the game's live predictor beside the SketchPad's).

The JSON written by ``--json`` has the keys ``machine``, ``data``, ``settings``,
``training``, ``loading``, ``inference`` (``torch``, ``onnxruntime`` and
``onnxruntime_int8``: the model quantised by :func:`~quicksketch_lib.export.quantize_int8`), ``widget``,
``memory``, ``phase_seconds`` and ``seconds`` (see :data:`JSON_KEYS`). Timings on a machine shared with other jobs are
contaminated: ``machine.load_average`` records the load before and after.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .categories import THE_TEN
from .data import (BatchLoader, QuickDrawNPY, SketchData, find_data, load_folder, normalize, normalize_batch,
                   walkthrough_classes)
from .device import configure_threads, cpu_has_fast_bf16, cpu_name, pick_device, resolve_precision
from .errors import DataError
from .locations import strokes_dir

JSON_KEYS = ("machine", "data", "settings", "training", "loading", "inference", "widget", "memory",
             "phase_seconds", "seconds")
Trainer = Callable[[int], int]  # train n batches, return images seen


@dataclass
class BenchSettings:
    """How much to measure; ``quick()`` is ``--quick`` (its run time: README "Speed")."""

    per_class: int | None = 2000  # drawings per class loaded (both paths load the same)
    warmup_steps: int = 2  # training steps per path before timing
    rounds: int = 4  # timed rounds, original and fast alternating
    steps_per_round: int = 3  # training steps per path per round
    loading_batches: int = 40  # batches timed per loader (fast path: 10x as many)
    latency_calls: int = 300  # batch-1 calls per backend (p50/p95)
    throughput_calls: int = 5  # batch-256 calls per backend
    widget_calls: int = 200  # stroke-to-prediction calls
    batch_size: int = 256
    int8: bool = True  # also measure the int8-quantised ONNX model

    @classmethod
    def quick(cls) -> "BenchSettings":
        return cls(per_class=1000, warmup_steps=1, rounds=3, steps_per_round=2, loading_batches=20,
                   latency_calls=200, throughput_calls=3, widget_calls=100)


# --------------------------------------------------------------------------- data
def original_loader(root: str | os.PathLike, classes: Sequence[str] | None = None,
                    per_class: int | None = None, batch_size: int = 256,
                    seed: int = 42) -> torch.utils.data.DataLoader:
    """The original recipe's data path, as written: per-sample Dataset with a
    transform, ``random_split`` 90/10, ``DataLoader(batch_size, shuffle=True)``."""
    dataset = QuickDrawNPY(root, transform=normalize, classes=classes, per_class=per_class)
    n_val = len(dataset) // 10
    train_set, _ = torch.utils.data.random_split(
        dataset, [len(dataset) - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    return torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True)


def fast_loader(data: SketchData, batch_size: int = 256, device: torch.device | str = "cpu",
                channels_last: bool = True, seed: int = 0) -> BatchLoader:
    """QuickSketch's data path: ``fit``'s own training loader (``make_loaders``: stratified
    90% split, BatchLoader)."""
    from .training import TrainConfig, make_loaders

    config = TrainConfig(batch_size=batch_size, channels_last=channels_last, seed=seed)
    return make_loaders(data, config, device)[0]


# --------------------------------------------------------------------------- training
def original_trainer(loader: Iterable, model: nn.Module, device: torch.device | str = "cpu") -> Trainer:
    """The original training step: fp32, NCHW, Adam 1e-3 wd 1e-4, CrossEntropy."""
    device = torch.device(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()

    def run(n: int) -> int:
        seen = 0
        for step, (x, y) in enumerate(loader):
            if step == n:
                break
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            seen += len(y)
        return seen
    return run


def fast_trainer(loader: BatchLoader, model: nn.Module, precision: str = "auto",
                 channels_last: bool = True) -> Trainer:
    """QuickSketch's default training step: ``fit``'s own pieces (``start_run``,
    ``train_one_epoch``) on ``loader`` (on a GPU with the step replayed as a CUDA graph;
    the first call also captures it)."""
    from .training import TrainConfig, start_run, train_one_epoch

    config = TrainConfig(precision=precision, channels_last=channels_last)
    run = start_run(model, config, loader.device, len(loader))

    def train(n: int) -> int:
        step = run.step
        first = step.cuda_graph and step.graph is None  # warm up and capture in the (untimed) first call
        loader.max_batches = max(n, step.warmup + 1) if first else n
        return train_one_epoch(run, loader, epoch=0)["images"]
    return train


def measure_training_throughput(trainer: Trainer, steps: int = 5, warmup: int = 1) -> dict:
    """Images/s of ``trainer`` over ``steps`` batches after ``warmup`` batches."""
    if warmup:
        trainer(warmup)
    t0 = time.perf_counter()
    images = trainer(steps)
    seconds = time.perf_counter() - t0
    return {"images_per_s": images / seconds, "images": images, "seconds": seconds, "steps": steps}


def compare_training(original: Trainer, fast: Trainer, rounds: int = 3, steps_per_round: int = 2,
                     warmup: int = 1) -> dict:
    """Both trainers, alternating in ``rounds`` (so load changes hit both), and their ratio.

    ``speedup`` is the ratio of total images/s; ``speedup_paired_median`` the
    median of the per-round ratios (less sensitive to a burst of load).
    """
    original(warmup), fast(warmup)
    per_round = {"original": [], "quicksketch": []}
    for _ in range(rounds):
        for name, trainer in (("original", original), ("quicksketch", fast)):
            t0 = time.perf_counter()
            images = trainer(steps_per_round)
            per_round[name].append((images, time.perf_counter() - t0))
    result = {}
    for name, runs in per_round.items():
        images, seconds = sum(r[0] for r in runs), sum(r[1] for r in runs)
        result[name] = {"images_per_s": images / seconds, "images": images, "seconds": seconds,
                        "steps": rounds * steps_per_round}
    ratios = [(f[0] / f[1]) / (o[0] / o[1]) for o, f in zip(per_round["original"], per_round["quicksketch"])]
    result["speedup"] = result["quicksketch"]["images_per_s"] / result["original"]["images_per_s"]
    result["speedup_paired_median"] = float(np.median(ratios))
    return result


def compare_accuracy(data: SketchData, config=None, model_config=None) -> dict:
    """Held-out accuracy of the fast path and of plain fp32 (NCHW), trained with ``fit``
    on the same split, initial weights, batch order and seed: only the arithmetic differs.

    Returns ``{"fp32": acc, "quicksketch": acc, "difference_points": ...}`` (accuracies
    in [0, 1], the difference in percentage points, fast minus fp32).
    """
    from dataclasses import replace

    from .model import build_model
    from .training import TrainConfig, fit

    config = config or TrainConfig(epochs=1, max_batches=100)
    result = {}
    for name, overrides in (("fp32", {"precision": "fp32", "channels_last": False}), ("quicksketch", {})):
        torch.manual_seed(config.seed)
        run = fit(build_model(model_config, data.classes), data, replace(config, **overrides), progress=False)
        result[name] = run.val_accuracy
        result[f"{name}_precision"] = run.checkpoint.train_config["precision"]
    result["difference_points"] = 100 * (result["quicksketch"] - result["fp32"])
    result["val_drawings"] = len(run.checkpoint.split["val_indices"])
    return result


# --------------------------------------------------------------------------- data loading alone
def measure_loading_throughput(loader: Iterable, batches: int = 20) -> dict:
    """Images/s of iterating ``loader`` for ``batches`` batches (first batch not timed)."""
    it = iter(loader)
    next(it)  # warm-up: iterator start, first batch
    images, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        images += len(y)
    seconds = time.perf_counter() - t0
    return {"images_per_s": images / seconds, "images": images, "seconds": seconds}


# --------------------------------------------------------------------------- inference
def measure_latency(fn: Callable[[], object], calls: int = 200, warmup: int = 10) -> dict:
    """p50/p95/mean milliseconds of ``fn()`` over ``calls`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "calls": calls}


def export_bench_onnx(model: nn.Module, classes: Sequence[str], folder: str | os.PathLike) -> Path:
    """Export ``model`` with ``export_onnx`` (parity-checked) into ``folder``; return the path."""
    from .checkpoint import Checkpoint
    from .export import export_onnx

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = Checkpoint(model_state=state, model_config=model.config, classes=list(classes))
    return export_onnx(ckpt, Path(folder) / "bench.onnx").path


def measure_inference(model: nn.Module, onnx_path: str | os.PathLike | None, drawings: np.ndarray,
                      calls: int = 200, throughput_calls: int = 3, batch_size: int = 256,
                      ort_threads: int = 1, int8_path: str | os.PathLike | None = None) -> dict:
    """Batch-1 latency and batch-``batch_size`` throughput, PyTorch eager (fp32, as
    ``Predictor`` runs it) and onnxruntime (``OnnxModel``, ``ort_threads`` threads);
    with ``int8_path`` also the int8 model (key ``onnxruntime_int8``, with its top-1
    agreement with PyTorch on the batch)."""
    from .inference import OnnxModel

    model = model.eval().cpu().to(memory_format=torch.contiguous_format)
    rows = np.resize(drawings, (batch_size, drawings.shape[1]))
    x_big = normalize_batch(torch.from_numpy(rows))
    x_one = x_big[:1].contiguous()
    backends = {}

    @torch.inference_mode()
    def torch_logits(x):
        return model(x)
    backends["torch"] = (torch_logits, x_one, x_big)
    for name, path in (("onnxruntime", onnx_path), ("onnxruntime_int8", int8_path)):
        if path is not None:
            backends[name] = (OnnxModel(path, threads=ort_threads).logits, x_one.numpy(), x_big.numpy())
    out = {}
    for name, (fn, one, big) in backends.items():
        lat = measure_latency(lambda: fn(one), calls)
        thr = measure_latency(lambda: fn(big), throughput_calls, warmup=1)
        out[name] = {"batch1_p50_ms": lat["p50_ms"], "batch1_p95_ms": lat["p95_ms"],
                     "batch1_calls": calls, f"batch{batch_size}_images_per_s": batch_size / (thr["mean_ms"] / 1e3)}
    for name in ("onnxruntime", "onnxruntime_int8"):
        if name in out:
            out[name]["threads"] = ort_threads
    if int8_path is not None:
        agree = backends["onnxruntime_int8"][0](x_big.numpy()).argmax(1) == torch_logits(x_big).numpy().argmax(1)
        out["onnxruntime_int8"]["top1_agreement"] = float(agree.mean())
    out["torch"]["threads"] = torch.get_num_threads()
    return out


# --------------------------------------------------------------------------- the widget's path
def bench_strokes(limit: int = 20, classes: Sequence[str] = THE_TEN) -> tuple[list, str]:
    """Real raw stroke drawings from :func:`~quicksketch_lib.locations.strokes_dir` (up to
    ``limit``), else a small synthetic drawing; returns ``(drawings, description)``."""
    from .rasterize import read_ndjson

    folder = strokes_dir()
    drawings = []
    for name in classes:
        path = folder / f"{name}.ndjson"
        if path.is_file() and len(drawings) < limit:
            drawings += [r["drawing"] for r in read_ndjson(path, limit=2)]
    if drawings:
        return drawings[:limit], f"{min(len(drawings), limit)} real raw drawings from {folder}"
    t = np.linspace(0, 2 * np.pi, 60)
    circle = [[(200 + 80 * np.cos(t)).tolist(), (200 + 80 * np.sin(t)).tolist()]]
    line = [[[100.0, 300.0], [100.0, 300.0]]]
    return [circle, circle + line], "2 synthetic drawings (no stroke files found)"


def measure_stroke_to_prediction(predictor, drawings: Sequence, calls: int = 100) -> dict:
    """Milliseconds from a finished list of strokes to top-5 guesses:
    ``rasterize_strokes`` then ``predictor.predict`` (what the drawing widget does)."""
    from .rasterize import rasterize_strokes

    state = {"i": 0}

    def update():
        strokes = drawings[state["i"] % len(drawings)]
        state["i"] += 1
        return predictor.predict(rasterize_strokes(strokes), top_k=5)
    result = measure_latency(update, calls, warmup=min(5, len(drawings)))
    result["backend"] = predictor.backend
    return result


def widget_timing(predictor, drawings: Sequence, calls: int = 100) -> dict:
    """:func:`measure_stroke_to_prediction` over all ``drawings``; plus, when the widget
    module has ``time_update(predictor, strokes, repeats)``, its own split into
    rasterise and predict time for the first drawing (key ``time_update``)."""
    result = measure_stroke_to_prediction(predictor, drawings, calls)
    result["source"] = "rasterize_strokes + Predictor.predict"
    try:
        from .widgets import time_update
    except ImportError:
        return result
    timing = time_update(predictor, drawings[0], repeats=max(1, calls // 2))
    result["time_update"] = dict(vars(timing)) if hasattr(timing, "__dict__") else timing
    return result


# --------------------------------------------------------------------------- the game's updates
def game_updates(classes: Sequence[str], per_class: int = 1, hz: float = 5.0) -> tuple[list, str]:
    """``(prompt, strokes so far)`` for every update a game makes while real raw stroke drawings
    (:func:`~quicksketch_lib.locations.strokes_dir`, ``per_class`` of each class) are drawn at
    their recorded speed: one at every stroke's end and every ``1 / hz`` s while the pen moves
    (:func:`~quicksketch_lib.game.timed_prefixes`). Returns ``(updates, description)``."""
    from .game import timed_prefixes
    from .rasterize import read_ndjson

    folder, updates, drawings = strokes_dir(), [], 0
    for name in classes:
        path = folder / f"{name}.ndjson"
        for record in read_ndjson(path, limit=per_class) if path.is_file() else []:
            updates += [(name, prefix) for _, prefix in timed_prefixes(record["drawing"], 1.0 / hz)]
            drawings += 1
    if not updates:
        raise DataError(f"no raw stroke drawings of the model's classes in {folder}; set $QUICKSKETCH_STROKES "
                        "to a folder of <class>.ndjson files (Quick Draw's raw format)")
    return updates, f"{len(updates):,} updates of {drawings} real drawings ({per_class} per class) from {folder}, {hz:g} Hz"


def measure_game_updates(predictors: dict, updates: Sequence, threshold: float) -> dict:
    """Per predictor, milliseconds of the kernel's work per update: strokes -> ``rasterize_strokes``
    -> the model -> the phrase (:func:`~quicksketch_lib.game.read_drawing` and
    :func:`~quicksketch_lib.game.guess_phrase`), wall clock and this thread's CPU time (what it
    costs on an idle core), p50/p95/max. The predictors take turns update by update, so machine
    load hits them alike. Also the split: rasterising alone and the model alone (CPU, p50/p95)."""
    from .game import guess_phrase, read_drawing
    from .rasterize import rasterize_strokes

    wall = {name: [] for name in predictors}
    cpu = {name: [] for name in predictors}
    raster, images = [], []
    for target, strokes in updates[:3]:  # warm-up
        for predictor in predictors.values():
            read_drawing(predictor, strokes, target)
    for target, strokes in updates:
        for name, predictor in predictors.items():
            c0, w0 = time.thread_time(), time.perf_counter()
            _, top3, _ = read_drawing(predictor, strokes, target)
            guess_phrase(top3, target, threshold)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.thread_time() - c0)
        c0 = time.thread_time()
        images.append(rasterize_strokes(strokes))
        raster.append(time.thread_time() - c0)
    out = {name: {"wall": _percentiles(wall[name]), "cpu": _percentiles(cpu[name])} for name in predictors}
    out["rasterize_cpu"] = _percentiles(raster)
    for name, predictor in predictors.items():
        model = []
        for image in images:
            c0 = time.thread_time()
            predictor.predict_proba(image)
            model.append(time.thread_time() - c0)
        out[name]["model_cpu"] = _percentiles(model)
    return out


def _percentiles(seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "max_ms": float(ms.max()), "calls": len(ms)}


def run_game_bench(model: str = "pretrained-54", per_class: int = 1, hz: float = 5.0,
                   log: Callable[[str], None] = print) -> dict:
    """``quicksketch bench --game``: the game's work per update with ``model``, its live
    predictor (:func:`~quicksketch_lib.game.live_predictor`) beside the SketchPad's
    (``Predictor.from_checkpoint``, torch), over real drawings replayed at update granularity."""
    from .checkpoint import load_checkpoint
    from .game import live_predictor, model_threshold
    from .inference import Predictor

    ckpt = load_checkpoint(model)
    updates, described = game_updates(ckpt.classes, per_class, hz)
    log(f"{model}: {len(ckpt.classes)} classes; {described}")
    result = {"machine": machine_info(torch.device("cpu")), "model": str(model), "classes": len(ckpt.classes),
              "tta_flip": ckpt.tta_flip, "updates": described, "cpu_flags": cpu_flags()}
    predictors = {"game": live_predictor(ckpt), "sketchpad": Predictor.from_checkpoint(model, backend="torch")}
    result["timing"] = measure_game_updates(predictors, updates, model_threshold(ckpt))
    result["machine"]["threads"] = 1  # both run one drawing on one torch thread (numpy: one thread)
    result["machine"]["load_average"]["end"] = os.getloadavg()[0]
    return result


def cpu_flags() -> list[str]:
    """The CPU's vector flags that matter here: avx2, avx512f, avx512_bf16, amx_bf16 (those present)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]


def format_game_table(r: dict) -> str:
    """``bench --game``'s result as text."""
    m, t = r["machine"], r["timing"]
    load = m["load_average"]
    lines = [f"QuickSketch bench --game -- {m['cpu']} ({m['cores']} cores; flags: {', '.join(r['cpu_flags']) or 'none'}), "
             f"torch {m['torch']}, {m['threads']} thread per update",
             f"model {r['model']} ({r['classes']} classes, test-time flip {'on' if r['tta_flip'] else 'off'}); {r['updates']}",
             f"load average {load['start']:.1f} -> {load['end']:.1f} on {m['cores']} cores"
             + ("  (machine busy: wall times contaminated; CPU time is what an idle core would take)"
                if max(load.values()) > 0.5 * (m["cores"] or 1) else ""),
             "",
             f"{'per update: strokes -> rasterise -> model -> phrase':<52}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"]
    for name, label in (("game", "game (live predictor)"), ("sketchpad", "SketchPad's predictor")):
        for kind in ("cpu", "wall"):
            row = t[name][kind]
            lines.append(f"{label + ', ' + kind + ' time':<52}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['max_ms']:>9.2f}")
    lines += [f"{'  of which rasterising (CPU)':<52}{t['rasterize_cpu']['p50_ms']:>9.2f}{t['rasterize_cpu']['p95_ms']:>9.2f}"
              f"{t['rasterize_cpu']['max_ms']:>9.2f}"]
    for name in ("game", "sketchpad"):
        row = t[name]["model_cpu"]
        lines.append(f"{'  of which the model, ' + name + ' (CPU)':<52}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['max_ms']:>9.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- memory and machine
def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (``getrusage`` maxrss), MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def machine_info(device: torch.device) -> dict:
    info = {"device": str(device), "cpu": cpu_name(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_bf16": cpu_has_fast_bf16(), "python": platform.python_version(),
            "load_average": {"start": os.getloadavg()[0]}}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


# --------------------------------------------------------------------------- the whole bench
def run_bench(data_dir: str | os.PathLike | None = None, settings: BenchSettings | None = None,
              threads: int = 0, device: str = "auto", log: Callable[[str], None] = print) -> dict:
    """Run every measurement on one data folder; return the JSON-ready result."""
    settings = settings or BenchSettings()
    t_start = time.perf_counter()
    configure_threads(threads)
    dev = pick_device(device)
    source = find_data(data_dir)
    root, described = source.path, source.describe()
    log(described)
    classes = walkthrough_classes(root)
    result = {"machine": machine_info(dev), "settings": dict(vars(settings)), "memory": {"after": {}}}
    result["phase_seconds"] = {}

    def mark(phase: str) -> None:
        result["memory"]["after"][phase] = round(peak_memory_mib(), 1)
        result["phase_seconds"][phase] = round(time.perf_counter() - t_start - sum(result["phase_seconds"].values()), 1)

    data = load_folder(root, classes=classes, per_class=settings.per_class)
    orig = original_loader(root, classes, settings.per_class, settings.batch_size)
    fast = fast_loader(data, settings.batch_size, dev)
    dtype = resolve_precision("auto", dev)
    result["data"] = {"root": str(root), "source": described, "classes": data.classes,
                      "drawings": len(data), "synthetic": data.synthetic}
    result["settings"]["precision"] = "fp32" if dtype is None else str(dtype).replace("torch.", "")
    mark("data")

    log("data loading ...")
    result["loading"] = compare_loading(orig, fast, settings.loading_batches)
    mark("loading")
    log("training: original recipe vs QuickSketch default path, alternating ...")
    from .model import ModelConfig, build_model
    torch.manual_seed(0)
    model_orig = build_model(ModelConfig(), data.classes)
    model_fast = build_model(ModelConfig(), data.classes)
    model_fast.load_state_dict(model_orig.state_dict())
    result["training"] = compare_training(original_trainer(orig, model_orig, dev), fast_trainer(fast, model_fast),
                                          settings.rounds, settings.steps_per_round, settings.warmup_steps)
    mark("training")

    log("inference: PyTorch eager vs onnxruntime ...")
    result["inference"], result["widget"] = _inference_and_widget(model_fast, data, settings)
    mark("inference")
    result["memory"]["peak_rss_mib"] = round(peak_memory_mib(), 1)
    result["machine"]["load_average"]["end"] = os.getloadavg()[0]
    result["seconds"] = time.perf_counter() - t_start
    return result


def compare_loading(original: Iterable, fast: BatchLoader, batches: int) -> dict:
    """Loader throughput both ways (the fast loader gets 10x the batches: it is that quick)."""
    result = {"original": measure_loading_throughput(original, batches),
              "quicksketch": measure_loading_throughput(fast, batches * 10)}
    result["speedup"] = result["quicksketch"]["images_per_s"] / result["original"]["images_per_s"]
    return result


def _inference_and_widget(model: nn.Module, data: SketchData, settings: BenchSettings) -> tuple[dict, dict]:
    from .inference import Predictor

    model = model.eval().cpu().to(memory_format=torch.contiguous_format)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        onnxruntime = None
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_bench_onnx(model, data.classes, tmp) if onnxruntime else None
        int8_path = None
        if onnx_path is not None and settings.int8:
            from .export import quantize_int8
            rows = data.images[np.random.default_rng(0).choice(len(data), min(256, len(data)), replace=False)]
            int8_path = quantize_int8(onnx_path, normalize_batch(torch.from_numpy(rows)).numpy())
        inference = measure_inference(model, onnx_path, data.images[-settings.batch_size:],
                                      settings.latency_calls, settings.throughput_calls,
                                      settings.batch_size, int8_path=int8_path)
        drawings, described = bench_strokes()
        predictor = (Predictor.from_onnx(onnx_path) if onnx_path
                     else Predictor.from_model(model, data.classes))
        widget = widget_timing(predictor, drawings, settings.widget_calls)
    widget["drawings"] = described
    return inference, widget


# --------------------------------------------------------------------------- output
def format_table(r: dict) -> str:
    """The bench result as a plain-text table."""
    m, t, ld, inf, w = r["machine"], r["training"], r["loading"], r["inference"], r["widget"]
    load = m["load_average"]
    lines = [
        f"QuickSketch bench -- {m['device']} ({m['cpu']}, {m['cores']} cores), torch {m['torch']}, "
        f"{m['threads']} threads, onnxruntime {m['onnxruntime']}",
        f"data: {r['data']['drawings']:,} drawings, {len(r['data']['classes'])} classes from {r['data']['root']}",
        f"load average {load['start']:.1f} -> {load.get('end', float('nan')):.1f} on {m['cores']} cores"
        + ("  (machine busy: timings contaminated; multi-threaded small ops suffer most, "
           "compare with --threads 1)" if max(load.values()) > 0.5 * (m["cores"] or 1) else ""),
        "",
        f"{'measurement':<44}{'original':>14}{'QuickSketch':>14}{'ratio':>9}",
        f"{'training, images/s (' + r['settings']['precision'] + ', channels_last)':<44}"
        f"{t['original']['images_per_s']:>14,.0f}{t['quicksketch']['images_per_s']:>14,.0f}{t['speedup']:>8.2f}x",
        f"{'  paired per-round median ratio':<44}{'':>14}{'':>14}{t['speedup_paired_median']:>8.2f}x",
        f"{'data loading alone, images/s':<44}"
        f"{ld['original']['images_per_s']:>14,.0f}{ld['quicksketch']['images_per_s']:>14,.0f}{ld['speedup']:>8.1f}x",
        "",
        f"{'inference':<44}{'PyTorch':>14}{'onnxruntime':>14}{'ort int8':>12}",
    ]
    ort, q8 = inf.get("onnxruntime", {}), inf.get("onnxruntime_int8", {})
    big = [k for k in inf["torch"] if k.endswith("_images_per_s")][0]
    for key, label, fmt in (("batch1_p50_ms", "batch 1, p50 ms", "{:>14.2f}"),
                            ("batch1_p95_ms", "batch 1, p95 ms", "{:>14.2f}"),
                            (big, f"batch {big[5:-13]}, images/s", "{:>14,.0f}"),
                            ("threads", "threads", "{:>14}")):
        lines.append(f"{label:<44}" + fmt.format(inf["torch"][key])
                     + (fmt.format(ort[key]) if key in ort else f"{'n/a':>14}")
                     + (fmt.format(q8[key])[2:] if key in q8 else f"{'n/a':>12}"))
    if "top1_agreement" in q8:
        lines.append(f"{'  int8 top-1 agreement with fp32':<44}{'':>14}{'':>14}{q8['top1_agreement']:>12.1%}")
    lines += [
        "",
        f"{'widget: strokes -> top-5 (' + w.get('backend', '?') + ')':<44}p50 {w['p50_ms']:.2f} ms, "
        f"p95 {w['p95_ms']:.2f} ms",
    ]
    if "time_update" in w:
        tu = w["time_update"]
        lines.append(f"{'  widgets.time_update, one drawing':<44}median {tu['median_ms']:.2f} ms "
                     f"(rasterise {tu['rasterize_ms']:.2f} + predict {tu['predict_ms']:.2f})")
    lines += [
        f"{'peak memory (maxrss)':<44}{r['memory']['peak_rss_mib']:,.0f} MiB",
        f"{'bench time':<44}{r['seconds']:.0f} s",
    ]
    return "\n".join(lines)
