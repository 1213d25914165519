"""The ``quicksketch`` command line (also ``python -m quicksketch_lib``).

Each subcommand is a thin layer over the library: parse, call, print. Errors a
user can fix end in one line ``error: ...`` and an exit code from :data:`EXIT_CODES`:
0 success, 2 bad usage (argparse), 3 bad input (data, checkpoint or file: a
``QuickSketchError``), 4 download failed (``DownloadError``: offline, unknown class,
server error), 1 anything unexpected.

Every subcommand is registered here, with the same option types: values are checked when
parsed (``positive_int``, ``thread_count``, ``positive_float``, ``seed_value``, ``device_name``,
``recipe_name``, ``class_name``, ``output_path`` -- no output may take a shipped model's name --
and ``--set`` values by the same rules), and every output location before any work
(``files.check_output_file`` / ``check_output_folder``). A command imports what it needs when it
runs, so ``quicksketch --help`` imports no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings

from .errors import DownloadError, QuickSketchError
from .locations import (DEFAULT_CHECKPOINT, DEMO_CHECKPOINT, DOWNLOADED_DATA, PRETRAINED, PRETRAINED_MODELS,
                        PRETRAINED_ONNX)

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_DOWNLOAD = 0, 1, 2, 3, 4
# The one table of exit codes: --help's epilog is made from it; errors.py and the README cite it.
EXIT_CODES = {EXIT_OK: "ok", EXIT_USAGE: "bad usage", EXIT_BAD_INPUT: "bad data/checkpoint/input",
              EXIT_DOWNLOAD: "download failed", EXIT_UNEXPECTED: "unexpected"}


# --------------------------------------------------------------------------- option values
class Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (``quicksketch train: error: ...``), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parsed(text: str, kind: type, what: str):
    """``kind(text)``, or the usage error "expected <what>, got '<text>'"."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    """A whole number of at least 1 (epochs, batch size, drawings per class, top-k ...)."""
    value = _parsed(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def seed_value(text: str) -> int:
    """A seed: a whole number from 0 to 2**32 - 1 (NumPy's range)."""
    value = _parsed(text, int, "a whole number")
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {2**32 - 1}, got {value}")
    return value


def thread_count(text: str) -> int:
    """A number of CPU threads: a whole number of at least 0 (0 = torch's choice)."""
    value = _parsed(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0 (0 = torch's choice), got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (learning rate, seconds)."""
    value = _parsed(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text}")
    return value


def _checked(check, text: str):
    """``check(text)``, its ValueError a usage error with the same message."""
    try:
        return check(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def device_name(text: str) -> str:
    """A device this machine has (see ``device.check_device``)."""
    from .device import check_device

    return _checked(check_device, text)


def output_path(text: str) -> str:
    """A file or folder to write: any path but the names of the shipped models ("pretrained",
    "pretrained-54"), which would never name what was written there."""
    if text in PRETRAINED_MODELS:
        raise argparse.ArgumentTypeError(f"{text!r} names a shipped model, so it cannot be an output "
                                         f"(it would never name what is written); choose another name, "
                                         f"e.g. models/{text}-mine.pt")
    return text


def class_name(text: str) -> str:
    """A class name: one line of printable text (``categories.check_class_name``)."""
    from .categories import check_class_name

    return _checked(check_class_name, text)


def recipe_name(text: str) -> str:
    from .recipes import RECIPES

    if text not in RECIPES:
        raise argparse.ArgumentTypeError(f"unknown recipe {text!r}; choose from {', '.join(RECIPES)}")
    return text


# --------------------------------------------------------------------------- subcommands
def cmd_doctor(args) -> int:
    from .device import doctor_report, format_report

    report = doctor_report()
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return EXIT_OK


def cmd_subset(args) -> int:
    from .data import make_subset

    written = make_subset(args.src, args.dst, args.per_class, args.classes, args.seed)
    print(f"wrote {sum(written.values()):,} drawings in {len(written)} classes to {args.dst}")
    return EXIT_OK


def cmd_train(args) -> int:
    """Train; under torchrun (``WORLD_SIZE`` set) every process joins the group first, and
    only rank 0 prints and writes (``--batch-size`` is per process)."""
    import torch.distributed as dist

    from .device import init_distributed

    rank, world = init_distributed(args.device)
    try:
        if rank == 0:
            if world > 1:
                print(f"DistributedDataParallel: {world} processes, {dist.get_backend()} backend, "
                      f"batch {args.batch_size or 256} per process", flush=True)
            return _train(args, world)
        args.quiet = True
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            return _train(args, world)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(args, world: int) -> int:
    from .data import load_folder
    from .device import set_seed
    from .files import check_output_file
    from .data import find_data
    from .model import build_model
    from .recipes import recipe_config, recipe_model_config, recipe_per_class, split_model_overrides
    from .training import fit, format_accuracy, history_path, resume_settings

    check_output_file(args.out)  # before reading data or training
    # --resume continues with the run's own settings; options given must agree (fit checks)
    stored = resume_settings(args.out) if args.resume else {}
    stored_model = stored.pop("model", None)  # its architecture: --set model.* must agree (fit checks)
    named = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 device=args.device, precision=args.precision, compile=args.compile or None,
                 channels_last=False if args.no_channels_last else None,
                 cuda_graphs=False if args.no_cuda_graphs else None, num_threads=args.threads,
                 max_batches=args.max_batches)
    overrides, model_overrides = split_model_overrides({**named, **dict(args.set)})  # --set wins
    recipe = overrides.pop("recipe", None) or args.recipe or stored.get("recipe", "original")
    try:
        config = recipe_config(recipe, base=stored, **overrides)
        model_config = recipe_model_config(recipe, base=stored_model, **model_overrides)
    except ValueError as exc:  # a value the configs refuse: a usage error, like the options'
        args.usage(str(exc))
    source = find_data(args.data)
    print(source.describe())
    # Under torchrun each rank reads only its shard of the memory-mapped files.
    per_class = args.per_class if args.per_class is not None else recipe_per_class(recipe)
    data = load_folder(source.path, classes=args.classes, per_class=per_class, mapped=world > 1)
    print(data.describe())
    set_seed(config.seed)  # the initial weights too come from --seed
    model = build_model(model_config, data.classes)
    result = fit(model, data, config, out=args.out, resume=args.resume, progress=not args.quiet)
    if result.epochs_trained == 0:
        print(f"nothing to do: {args.out} already has {len(result.history)} of {config.epochs} epochs "
              "(nothing was written); raise --epochs to train further")
        return EXIT_OK
    print(f"held-out accuracy {format_accuracy(result.val_accuracy)} after {len(result.history)} epochs")
    print(f"saved {args.out} (history: {history_path(args.out)})")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from .checkpoint import load_checkpoint
    from .evaluation import classes_to_evaluate, evaluate, load_for_checkpoint
    from .files import check_output_file

    for out in filter(None, (args.json, args.png)):
        check_output_file(out)  # before the work
    ckpt = load_checkpoint(args.checkpoint)
    classes = classes_to_evaluate(ckpt, args.data, args.classes)  # by name; unknown ones refused
    data = load_for_checkpoint(ckpt, args.data, args.per_class, classes)
    report = evaluate(ckpt, data, tta_flip=args.tta_flip)
    print(report.format_text())
    if args.json:
        print(f"wrote {report.save_json(args.json)}")
    if args.png:
        from .plots import save_confusion_png  # the core evaluates; drawing is the caller's
        print(f"wrote {save_confusion_png(report, args.png)}")
    return EXIT_OK


def cmd_predict(args) -> int:
    """Imports no torch when an ONNX export answers (``Predictor.from_checkpoint``)."""
    from .drawing import BLANK, load_inputs
    from .inference import Predictor

    names, drawings = load_inputs(args.inputs)  # the inputs first: a mistake there is found at once
    predictor = Predictor.from_checkpoint(args.checkpoint, backend=args.backend, tta_flip=args.tta_flip,
                                          exporter=_export_onnx)  # a shipped model: into the cache, once
    results = predictor.predict_or_blank(drawings, top_k=args.top_k)  # [] for a blank drawing
    if args.json:
        print(json.dumps([{"input": n, "blank": not r, "top_k": [{"class": c, "probability": p} for c, p in r]}
                          for n, r in zip(names, results)], indent=1, allow_nan=False))
        return EXIT_OK
    for name, guesses in zip(names, results):
        print(f"{name}: " + (", ".join(f"{c} {p:.1%}" for c, p in guesses) if guesses else BLANK))
    return EXIT_OK


def _export_onnx(checkpoint, out) -> None:
    """``export.export_onnx``, imported when called: it imports torch, which ``predict`` needs
    only the first time a shipped model is exported into the cache."""
    from .export import export_onnx

    export_onnx(checkpoint, out)


def cmd_export(args) -> int:
    from .checkpoint import load_checkpoint
    from .export import export_int8, export_onnx

    ckpt = load_checkpoint(args.checkpoint)
    report = export_onnx(ckpt, args.out, opset=args.opset)
    print(report.describe())
    if args.int8:
        print(export_int8(ckpt, args.data, report.path.with_suffix(".int8.onnx"),
                          fp32=report.path).describe())
    return EXIT_OK


def cmd_download(args) -> int:
    from .categories import THE_TEN
    from .download import download_classes

    paths = download_classes(args.classes or THE_TEN, args.out, per_class=args.per_class, source=args.source,
                             fmt=args.format, progress=not args.quiet, timeout=args.timeout,
                             deadline=args.deadline)
    print(f"wrote {len(paths)} file(s) to {args.out}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(epochs=args.epochs, per_class=args.per_class, out=args.out, offline=args.offline)
    return EXIT_OK


def cmd_teach(args) -> int:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import load_folder
    from .files import check_output_file
    from .inference import Predictor
    from .teach import TeachConfig, forget_class, load_drawings, taught_classes, teach_class

    if not args.forget and not (args.name and args.drawings):
        args.usage("--name and --drawings are required (or --forget NAME)")
    check_output_file(args.out)  # before reading or teaching, as train does
    ckpt = load_checkpoint(args.checkpoint)
    if args.forget:
        out = forget_class(ckpt, args.forget)
        save_checkpoint(out, args.out)
        print(f"forgot '{args.forget}': the model knows {len(out.classes)} classes again; wrote {args.out}")
        return EXIT_OK
    replay = load_folder(args.data, classes=[c for c in ckpt.classes if c not in taught_classes(ckpt)]) \
        if args.data else None
    rows = load_drawings(args.drawings)
    config = TeachConfig(seed=args.seed, num_threads=TeachConfig.num_threads if args.threads is None else args.threads,
                         **dict(args.set))
    out = teach_class(ckpt, args.name, rows, replay=replay, config=config)
    save_checkpoint(out, args.out)
    found = Predictor.from_model(out.build_model(), out.classes, out.tta_flip).predict(rows, top_k=1)
    hits = sum(top[0][0] == out.classes[-1] for top in found)
    print(f"taught '{out.classes[-1]}' from {len(rows)} drawings in {out.data['taught'][-1]['seconds']:.1f} s "
          f"({hits} of {len(rows)} now recognised); the model knows {len(out.classes)} classes; "
          f"wrote {args.out}")
    return EXIT_OK


def cmd_bench(args) -> int:
    from .bench import BenchSettings, format_game_table, format_table, run_bench, run_game_bench
    from .files import atomic_write, check_output_file

    if args.json:
        check_output_file(args.json)  # before the work
    if args.game:
        result = run_game_bench(args.model, per_class=args.per_class or 1)
        print(format_game_table(result))
    else:
        settings = BenchSettings.quick() if args.quick else BenchSettings()
        if args.per_class:
            settings.per_class = args.per_class
        result = run_bench(args.data, settings, threads=args.threads or 0, device=args.device or "auto")
        print(format_table(result))
    if args.json:
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser
def config_override(text: str) -> tuple[str, object]:
    """argparse ``type`` for ``--set KEY=VALUE`` (``recipes.parse_override``): a bad key, or a
    value the config refuses (``TrainConfig``'s own checks, and the options' types where a
    field has an option), is a usage error (exit 2) in one line."""
    from .recipes import check_override, parse_override

    key, value = _checked(parse_override, text)
    _checked(lambda _: check_override(key, value), text)
    check = {"num_threads": positive_int, "device": device_name, "recipe": recipe_name}.get(key)
    if check is not None and value is not None:
        try:
            check(str(value))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{key}: {exc}") from None
    return key, value


def teach_override(text: str) -> tuple[str, object]:
    """argparse ``type`` for teach's ``--set KEY=VALUE``: any ``TeachConfig`` field (not the
    ones teach has an option for), parsed by its type; a bad key or value is a usage error."""
    import typing

    from .recipes import parse_field
    from .teach import TeachConfig

    types = {k: t for k, t in typing.get_type_hints(TeachConfig).items() if k not in ("seed", "num_threads")}
    return _checked(lambda t: parse_field(t, types, "a TeachConfig field (--seed and --threads are options)"), text)


# what a CHECKPOINT argument may name besides a file (evaluate, predict, export, teach)
SHIPPED_MODELS_HELP = " or ".join(f"'{name}'" for name in PRETRAINED_MODELS) + \
    " (a model shipped in the package)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="quicksketch",
        description="QuickSketch: classify 28x28 Quick, Draw! sketches with SketchCNN.",
        epilog="Exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("doctor", help="check torch, CUDA/MPS/CPU and what the trainer will use",
                       description="Report torch version, CUDA/MPS/CPU, GPU name and memory, bf16 support, "
                                   "thread count, and the device and precision the trainer will pick.")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("subset", help="make a deterministic per-class subset of a data folder",
                       description="Copy a seeded random sample of N drawings per class from SRC to DST. "
                                   "Files are memory-mapped: full-size class files are never read whole.")
    s.add_argument("src", help="data folder with one <class>.npy per class")
    s.add_argument("dst", type=output_path, help="folder to write the subset to")
    s.add_argument("--per-class", type=positive_int, required=True, metavar="N", help="drawings per class")
    s.add_argument("--classes", nargs="+", metavar="NAME", help="only these classes (default: all)")
    s.add_argument("--seed", type=seed_value, default=0, help="sampling seed (default 0)")
    s.set_defaults(func=cmd_subset)

    s = sub.add_parser("train", help="train SketchCNN on a data folder",
                       description="Train SketchCNN. Defaults are the original recipe (Adam 1e-3, wd 1e-4, "
                                   "StepLR(10, 0.5), 20 epochs, batch 256, 90/10 split), on the fast path "
                                   "(bf16 autocast + channels_last where the hardware has it). A checkpoint "
                                   "is saved after every epoch; --resume continues an interrupted run. "
                                   "Data-parallel on several GPUs or CPU processes: "
                                   "torchrun --nproc_per_node=N -m quicksketch_lib train ...")
    s.add_argument("--data", help="data folder (default: $QUICKSKETCH_DATA, data/quickdraw, "
                                  "else the offline default of synthetic doodles)")
    s.add_argument("--recipe", type=recipe_name, help="named recipe: original (default), quicksketch, learner "
                   "(quicksketch for 3 epochs on 2000 drawings per class: a CPU run), or game "
                   "(quicksketch + drawings cut part-way with probability 0.3: pretrained-54, with --epochs 60)")
    s.add_argument("--epochs", type=positive_int, help="epochs (recipe default: 20)")
    s.add_argument("--batch-size", type=positive_int, help="batch size (default 256)")
    s.add_argument("--lr", type=positive_float, help="learning rate (recipe default)")
    s.add_argument("--seed", type=seed_value, help="seed for split, init and batch order (default 0)")
    s.add_argument("--out", type=output_path, default=str(DEFAULT_CHECKPOINT),
                   help=f"checkpoint path (default {DEFAULT_CHECKPOINT})")
    s.add_argument("--resume", action="store_true",
                   help="continue the run saved at --out, with its settings (other ones are refused)")
    s.add_argument("--classes", nargs="+", metavar="NAME", help="train on these classes only")
    s.add_argument("--per-class", type=positive_int, metavar="N", help="use at most N drawings per class "
                   "(default: all; the learner recipe: 2000)")
    s.add_argument("--device", type=device_name, help="auto (default), cpu, cuda, cuda:1, mps")
    s.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision (default auto: bf16 where fast, else fp32)")
    s.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    s.add_argument("--compile", action="store_true", help="torch.compile the model")
    s.add_argument("--no-cuda-graphs", action="store_true",
                   help="on a GPU, launch each step's kernels from Python instead of replaying a CUDA graph")
    s.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--max-batches", type=positive_int, metavar="N", help="cap batches per epoch (quick runs)")
    s.add_argument("--set", action="append", default=[], type=config_override, metavar="KEY=VALUE",
                   help="set any TrainConfig field, e.g. --set label_smoothing=0.1 --set schedule=cosine, "
                        "or a ModelConfig field as model.FIELD, e.g. --set model.channels=32,64,128 "
                        "--set model.dropout=0.3 (repeatable; wins over the recipe and the options above)")
    s.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    s.set_defaults(func=cmd_train, usage=s.error)

    s = sub.add_parser("evaluate", help="accuracy, top-3, per-class precision/recall, confusion, ECE",
                       description="Evaluate a checkpoint on a folder of its classes (matched by name: any "
                                   "order, all or some of them; a class it does not know is refused). "
                                   "Drawings it was trained on are left out and counted: on the folder it "
                                   "was trained on its recorded held-out split is used, elsewhere every "
                                   "drawing whose fingerprint is not one of its training drawings'.")
    s.add_argument("checkpoint", help=f"checkpoint .pt, or {SHIPPED_MODELS_HELP}")
    s.add_argument("--data", required=True, help="data folder")
    s.add_argument("--classes", nargs="+", metavar="NAME",
                   help="evaluate only these classes of the folder (default: every class file in it)")
    s.add_argument("--per-class", type=positive_int, metavar="N",
                   help="at most N drawings per class (default: as in training on its drawings, else all)")
    s.add_argument("--json", type=output_path, metavar="OUT.json", help="write all metrics as JSON")
    s.add_argument("--png", type=output_path, metavar="OUT.png", help="write the confusion matrix as a PNG")
    s.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with mirrored drawings (default: as the recipe says)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("predict", help="top-k guesses for .npy rows or PNG/JPEG drawings",
                       description="Print the top-k classes for each drawing: rows of a .npy file "
                                   "((N, 784) or (N, 28, 28) uint8) or images of any size, dark on light "
                                   "or light on dark.")
    s.add_argument("checkpoint", help=f"checkpoint .pt, an exported .onnx, or {SHIPPED_MODELS_HELP}")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy, .png, .jpg ...")
    s.add_argument("--top-k", type=positive_int, default=5, help="how many guesses (default 5)")
    s.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto (default): onnxruntime when an export of this checkpoint is beside it "
                        "(or, for the shipped models, in ~/.cache/quicksketch, made on first use), "
                        "else PyTorch")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored drawing (default: as the checkpoint was trained)")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("export", help="export a checkpoint to ONNX, verified against PyTorch",
                       description="Write one self-contained .onnx (dynamic batch axis, class names and "
                                   "normalisation in its metadata) and check onnxruntime against PyTorch.")
    s.add_argument("checkpoint", help=f"checkpoint .pt, or {SHIPPED_MODELS_HELP}")
    s.add_argument("--out", type=output_path, help="output .onnx (default: beside the checkpoint; "
                                 f"for '{PRETRAINED}': {PRETRAINED_ONNX})")
    s.add_argument("--opset", type=positive_int, default=18,
                   help="ONNX opset (default 18; refused when the exporter cannot write it)")
    s.add_argument("--int8", action="store_true",
                   help="also write an int8 model (.int8.onnx), calibrated on held-out drawings")
    s.add_argument("--data", help="with --int8: the data folder the model was trained on "
                                  "(default: the one recorded in the checkpoint)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("download", help="download real Quick Draw data (only the rows needed)",
                       description="Fetch Google's numpy_bitmap files (or raw/simplified .ndjson strokes) "
                                   "and write per-class subsets in the project's data format.")
    s.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                   help="official class names, spaces kept (default: the ten)")
    s.add_argument("--per-class", type=positive_int, default=5000, metavar="N",
                   help="drawings per class (default 5000)")
    s.add_argument("--out", type=output_path, default=str(DOWNLOADED_DATA),
                   help=f"output folder (default {DOWNLOADED_DATA})")
    s.add_argument("--source", help="another base URL or a local folder (default: Google's bucket)")
    s.add_argument("--format", default="npy", choices=["npy", "ndjson-raw", "ndjson-simplified"],
                   help="npy (default), ndjson-raw or ndjson-simplified")
    s.add_argument("--timeout", type=positive_float, default=30, metavar="SECONDS",
                   help="give up when a connection waits, or less than 1 KiB arrives, for this long (default 30)")
    s.add_argument("--deadline", type=positive_float, default=3600, metavar="SECONDS",
                   help="give up when the whole download takes longer (default 3600; rerun to resume)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("demo", help="the main job: data, a short training run, evaluate, export, predict",
                       description="Use data/quickdraw if present, else download the ten classes when "
                                   "online, else generate the offline default (synthetic doodles); train "
                                   "a short run, evaluate, export to ONNX and predict a few drawings.")
    s.add_argument("--epochs", type=positive_int, default=3, help="epochs of the short run (default 3)")
    s.add_argument("--per-class", type=positive_int, default=1500, help="drawings per class used (default 1500)")
    s.add_argument("--out", type=output_path, default=str(DEMO_CHECKPOINT),
                   help=f"checkpoint path (default {DEMO_CHECKPOINT})")
    s.add_argument("--offline", action="store_true", help="never try to download")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser(
        "teach", help="teach a checkpoint a new class from a few drawings (or forget one)",
        description="Add a class to a trained model from K >= 5 drawings: a new output row (and two "
                    "hidden units of its own) imprinted from the drawings' features and fine-tuned with "
                    "replayed drawings of the old classes, in seconds on a CPU. Writes a new checkpoint; "
                    "--forget removes a taught class again (the other weights exactly as before).")
    s.add_argument("checkpoint", help=f"checkpoint .pt, or {SHIPPED_MODELS_HELP}")
    s.add_argument("--name", type=class_name, help="the new class's name (one line of printable text)")
    s.add_argument("--drawings", nargs="+", metavar="FILE",
                   help=".npy rows ((N, 784) or (N, 28, 28) uint8), pictures (PNG/JPEG...) or .ndjson strokes")
    s.add_argument("--out", type=output_path, required=True, metavar="NEW.pt",
                   help="where to write the new checkpoint")
    s.add_argument("--forget", type=class_name, metavar="NAME",
                   help="instead of teaching: remove the taught class NAME")
    s.add_argument("--data", metavar="DIR", help="the old classes' training data, for checkpoints that "
                                                 "carry no replay drawings")
    s.add_argument("--seed", type=seed_value, default=0, help="seed for augmentation and replay (default 0)")
    s.add_argument("--threads", type=thread_count,
                   help="torch CPU threads for teaching (default 0: torch's choice, all cores)")
    s.add_argument("--set", action="append", default=[], type=teach_override, metavar="KEY=VALUE",
                   help="set a TeachConfig field, e.g. --set read_body=false for the new output row only "
                        "(repeatable; README 'Teach it your own class')")
    s.set_defaults(func=cmd_teach, usage=s.error)

    s = sub.add_parser(
        "bench", help="measure the original recipe vs QuickSketch's fast path (training, loading, inference)",
        description="In one process and on the same data, measure training images/s of the original "
                    "recipe (fp32, per-sample Dataset, random_split, DataLoader) and of QuickSketch's "
                    "default path, data loading alone, batch-1 latency and batch-256 throughput with "
                    "PyTorch and onnxruntime, the widget's stroke-to-prediction time and peak memory. "
                    "Data: --data, $QUICKSKETCH_DATA, data/quickdraw (the ten classes when it has them), "
                    "else the offline default.")
    s.add_argument("--quick", action="store_true", help="fewer steps (its run time: README \"Speed\")")
    s.add_argument("--json", type=output_path, metavar="PATH", help="also write the results as JSON")
    s.add_argument("--data", help="data folder (default: see above)")
    s.add_argument("--per-class", type=positive_int, metavar="N", help="drawings per class to load")
    s.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--device", type=device_name, help="auto (default), cpu, cuda, cuda:1, mps")
    s.add_argument("--game", action="store_true",
                   help="instead: the game's work per update (strokes -> rasterise -> model -> phrase) over real "
                        "stroke drawings replayed at 5 updates a second, p50/p95/max ms (--per-class: drawings "
                        "per class, default 1)")
    s.add_argument("--model", default="pretrained-54", help="the model for --game (default pretrained-54)")
    s.set_defaults(func=cmd_bench)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line ``warning: ...`` on stderr (no file and line of library code)."""
    print(f"warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the filters and showwarning on the way out
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return args.func(args)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DOWNLOAD
    except QuickSketchError as exc:  # DataError, CheckpointError, InputError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `quicksketch evaluate ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a disk error outside the checked writes: still one line
        from .files import DISK_ERRORS

        if exc.errno not in DISK_ERRORS:
            raise
        print(f"error: {exc.filename or ''}: {exc.strerror}; check the disk and the folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; a checkpoint saved after the last full epoch can be resumed with --resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
