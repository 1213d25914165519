import json
import re

import numpy as np
import pytest
import torch

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.recipes import recipe_config
from quicksketch_lib.train_step import (TrainStep, build_optimizer, build_scheduler, load_optimizer_state,
                                        lr_schedule, portable_lr_state, uses_cuda_graphs)
from quicksketch_lib.training import TrainConfig, fit, history_path


def _model(n=3, seed=0):
    torch.manual_seed(seed)  # the initial weights, as `quicksketch train` seeds them
    return SketchCNN(ModelConfig(num_classes=n))


def test_defaults_are_the_original_recipe():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.weight_decay) == (20, 256, 1e-3, 1e-4)
    assert (c.optimizer, c.schedule, c.step_size, c.gamma, c.val_fraction) == ("adam", "step", 10, 0.5, 0.1)
    assert c.label_smoothing == 0 and c.augment == 0 and c.ema_decay == 0
    assert recipe_config("original") == c


def test_step_schedule_halves_every_ten_epochs():
    lrs = lr_schedule(TrainConfig(), steps_per_epoch=2)
    assert lrs[0] == 1e-3 and lrs[19] == 1e-3 and lrs[20] == 5e-4 and lrs[-1] == 5e-4
    assert len(lrs) == 40


def test_short_run_learns_and_writes_checkpoint_and_history(shapes_dir, tmp_path):
    data = load_folder(shapes_dir)
    out = tmp_path / "m.pt"
    result = fit(_model(), data, TrainConfig(epochs=6, batch_size=32), out=out, progress=False)
    assert result.val_accuracy >= 0.8  # 3 classes: chance is 0.33
    ckpt = load_checkpoint(out)
    assert ckpt.classes == ["box", "cross", "ring"] and ckpt.metrics["epochs"] == 6
    assert len(ckpt.history) == 6 and ckpt.history[-1]["val_accuracy"] == result.val_accuracy
    assert json.loads(history_path(out).read_text()) == ckpt.history
    assert len(ckpt.split["val_indices"]) == 18  # 10% of each class of 60


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_resume_equals_uninterrupted(shapes_dir, tmp_path, precision):
    data = load_folder(shapes_dir)
    cfg = TrainConfig(epochs=4, batch_size=32, precision=precision, seed=5, device="cpu")  # bit-exact
    full = fit(_model(), data, cfg, out=tmp_path / "full.pt", progress=False)
    # "interrupted" after 2 epochs, then resumed to 4
    fit(_model(), data, TrainConfig(**{**cfg.to_dict(), "epochs": 2}), out=tmp_path / "part.pt", progress=False)
    resumed = fit(_model(), data, cfg, out=tmp_path / "part.pt", resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    a, b = load_checkpoint(tmp_path / "full.pt").model_state, load_checkpoint(tmp_path / "part.pt").model_state
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.history[-1]["val_accuracy"] == full.history[-1]["val_accuracy"]


def test_resume_refuses_other_data(shapes_dir, tmp_path):
    data = load_folder(shapes_dir)
    fit(_model(), data, TrainConfig(epochs=1), out=tmp_path / "m.pt", progress=False)
    from quicksketch_lib.errors import CheckpointError
    with pytest.raises(CheckpointError, match="different drawings"):
        fit(_model(), data.subset(np.arange(0, 180, 2)), TrainConfig(epochs=2), out=tmp_path / "m.pt",
            resume=True, progress=False)


def test_interrupted_save_leaves_the_old_checkpoint_intact(shapes_dir, tmp_path, monkeypatch):
    data = load_folder(shapes_dir)
    out = tmp_path / "m.pt"
    fit(_model(), data, TrainConfig(epochs=1), out=out, progress=False)
    before = out.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), data, TrainConfig(epochs=1, seed=9), out=out, progress=False)
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_quicksketch_recipe_knobs_run(shapes_dir):
    data = load_folder(shapes_dir)
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer="adamw", schedule="cosine", warmup_epochs=0.5,
                      label_smoothing=0.1, ema_decay=0.9)
    result = fit(_model(), data, cfg, progress=False)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["train_loss"])


def test_real_drawings_reach_clearly_non_random_accuracy(ten_class_model):
    _, result, _ = ten_class_model
    assert result.val_accuracy >= 0.5  # ten classes: chance is 0.10


# --------------------------------------------------------------------------- CUDA graphs
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_graphs_only_where_a_graph_can_replay_the_step():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    cfg = TrainConfig()
    assert uses_cuda_graphs(cfg, cuda, torch.bfloat16)
    assert uses_cuda_graphs(cfg, cuda, None)  # fp32
    assert not uses_cuda_graphs(cfg, cpu, torch.bfloat16)
    assert not uses_cuda_graphs(cfg, cuda, torch.float16)  # the loss scaler skips steps
    assert not uses_cuda_graphs(cfg, cuda, torch.bfloat16, world=2)  # DDP
    assert not uses_cuda_graphs(TrainConfig(compile=True), cuda, torch.bfloat16)
    assert not uses_cuda_graphs(TrainConfig(cuda_graphs=False), cuda, torch.bfloat16)


def test_saved_learning_rates_are_plain_floats():
    """The graph path keeps lr in a device tensor; checkpoints store floats so they resume anywhere."""
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([param], lr=torch.tensor(0.01))
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    param.grad = torch.ones(3)
    opt.step()
    sched.step()
    o, s = portable_lr_state(opt.state_dict()), portable_lr_state(sched.state_dict())
    assert o["param_groups"][0]["lr"] == pytest.approx(0.005) and type(o["param_groups"][0]["lr"]) is float
    assert o["param_groups"][0]["params"] == [0]
    assert torch.is_tensor(o["state"][0]["step"])  # per-parameter state untouched
    assert all(type(v) is float for v in s["_last_lr"])
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1.0)
    fresh.load_state_dict(o)  # loads into a plain (float-lr) optimizer
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.005)


def test_optimizer_state_from_a_graph_run_loads_into_a_cpu_run():
    """A GPU checkpoint's Adam groups say capturable=True; resuming on a CPU must not."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    saved = {**saved, "param_groups": [{**g, "capturable": True} for g in saved["param_groups"]]}
    fresh = torch.optim.Adam(model.parameters(), lr=1.0)
    load_optimizer_state(fresh, saved)
    assert fresh.param_groups[0]["capturable"] is False and fresh.param_groups[0]["lr"] == 0.01
    model(torch.ones(1, 2)).sum().backward()
    fresh.step()  # raised "If capturable=True, params and state_steps must be on supported devices"
    assert int(fresh.state[model.weight]["step"]) == 2


def _graph_test_batches(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 1, 28, 28, generator=g).cuda(), torch.randint(0, 3, (n,), generator=g).cuda())
            for n in sizes]


def _graph_test_step(graph: bool, dtype=None, schedule="step", steps=1):
    torch.manual_seed(0)
    model = SketchCNN(ModelConfig(num_classes=3, dropout=0.0)).cuda().train()
    cfg = TrainConfig(epochs=1, schedule=schedule)
    opt = build_optimizer(model, cfg, graphed=True)
    sched = build_scheduler(opt, cfg, steps)
    return model, sched, TrainStep(model, opt, torch.nn.CrossEntropyLoss(), torch.device("cuda"), dtype,
                                   cuda_graph=graph)


@needs_cuda
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_graph_step_is_the_eager_step(dtype, monkeypatch):
    """Replaying the captured step trains as the eager step does on the same batches:
    3 eager warm-up steps, capture, replays, an eager batch of another size, replays,
    with one-cycle changing the learning rate every step. GPU kernels chosen under capture
    may round differently, and Adam's first steps blow any rounding difference up to a
    full step on near-zero gradients, so the yardstick is how far the same 10 eager steps
    move with rounding changed (TF32 off) or run again (bf16 is not bit-reproducible).
    Measured on an H100 (relative to the weight change): fp32 graph vs eager 0.10, TF32
    off vs on 0.20; bf16 graph vs eager 0.29, eager vs eager 0.28. A replay bug (stale input or lr, lost or doubled update) is O(1)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    sizes = [32] * 7 + [8] + [32] * 2
    batches = _graph_test_batches(sizes)
    runs = []
    for graph, tf32 in ((False, True), (False, False), (True, True)):
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", tf32)
        model, sched, step = _graph_test_step(graph, dtype, "onecycle", len(sizes))
        start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        for x, y in batches:
            step(x, y)
            sched.step()
        assert (step.graph is not None) == graph
        runs.append((step.stats(), torch.cat([p.detach().flatten() for p in model.parameters()]) - start))
    (eager, eager_change), (_, rounded_other_way), (graphed, graph_change) = runs
    noise = ((rounded_other_way - eager_change).norm() / eager_change.norm()).item()
    diff = ((graph_change - eager_change).norm() / eager_change.norm()).item()
    print(f"weight change: graph vs eager {diff:.2e}, eager with other rounding {noise:.2e}")
    assert graphed["images"] == eager["images"] == sum(sizes)
    assert graphed["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-2)
    assert diff <= 3 * max(noise, 1e-3)


@needs_cuda
def test_cuda_graph_replay_reads_the_current_learning_rate():
    """At lr 0 a replay leaves the weights bit-identical; back at 1e-3 it moves them. Set
    either as a float (older schedulers assign) or in the tensor (newer ones fill)."""
    model, _, step = _graph_test_step(graph=True)
    batches = _graph_test_batches([32] * 8)
    for x, y in batches[:4]:  # 3 warm-up steps, then capture and replay
        step(x, y)
    assert step.graph is not None
    weights = lambda: [p.detach().clone() for p in model.parameters()]  # noqa: E731
    before = weights()
    step.optimizer.param_groups[0]["lr"] = 0.0
    step(*batches[4])
    step.optimizer.param_groups[0]["lr"].fill_(0.0)
    step(*batches[5])
    assert all(torch.equal(a, b) for a, b in zip(before, weights()))
    step.optimizer.param_groups[0]["lr"] = 1e-3
    step(*batches[6])
    assert not all(torch.equal(a, b) for a, b in zip(before, weights()))


@needs_cuda
def test_cuda_graph_run_resumes_from_its_checkpoint(shapes_dir, tmp_path):
    data = load_folder(shapes_dir)
    cfg = TrainConfig(epochs=6, batch_size=32, seed=5, step_size=3, device="cuda")
    fit(_model(), data, TrainConfig(**{**cfg.to_dict(), "epochs": 3}), out=tmp_path / "a.pt", progress=False)
    saved = load_checkpoint(tmp_path / "a.pt")
    assert type(saved.train_state["optimizer"]["param_groups"][0]["lr"]) is float
    resumed = fit(_model(), data, cfg, out=tmp_path / "a.pt", resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert [h["lr"] for h in resumed.history] == pytest.approx([1e-3] * 3 + [5e-4] * 3)
    assert max(h["val_accuracy"] for h in resumed.history) >= 0.7  # chance is 0.33
    # and on the CPU, from the same file
    cpu = fit(_model(), data, TrainConfig(**{**cfg.to_dict(), "epochs": 7, "device": "cpu"}),
              out=tmp_path / "a.pt", resume=True, progress=False)
    assert [h["epoch"] for h in cpu.history] == [1, 2, 3, 4, 5, 6, 7]
    # and back on the GPU, from the CPU's file
    gpu = fit(_model(), data, TrainConfig(**{**cfg.to_dict(), "epochs": 8}), out=tmp_path / "a.pt",
              resume=True, progress=False)
    assert [h["epoch"] for h in gpu.history] == list(range(1, 9))


@pytest.mark.parametrize("field, value, expected", [
    ("schedule", "bogus", "expected step, cosine or onecycle"), ("optimizer", "sgd", "expected adam or adamw"),
    ("weight_decay", -1, "at least 0"), ("label_smoothing", 2, "[0, 1)"), ("step_size", 0, "at least 1"),
    ("precision", "fp8", "auto, fp32, bf16 or fp16"), ("lr", float("inf"), "finite"), ("epochs", 2.5, "whole"),
    ("tta_flip", "yes", "true or false"), ("max_batches", 0, "none or"),
])
def test_train_config_refuses_values_no_run_can_use(field, value, expected):
    with pytest.raises(ValueError, match=re.escape(f"{field}={value!r}: ") + ".*" + re.escape(expected)):
        TrainConfig(**{field: value})
    assert TrainConfig(**{field: getattr(TrainConfig(), field)})  # the defaults are valid


def test_no_held_out_drawing_means_no_held_out_accuracy(shapes_dir, tmp_path):
    """One drawing per class: nothing can be held out, so the accuracy is None ("not
    measured") in the result, the history and the checkpoint -- never 0 % -- with a warning."""
    from quicksketch_lib.training import format_accuracy

    data = load_folder(shapes_dir, per_class=1)
    with pytest.warns(UserWarning, match="too little data to hold any drawing out"):
        result = fit(_model(), data, TrainConfig(epochs=1, batch_size=32), out=tmp_path / "m.pt", progress=False)
    assert result.val_accuracy is None and result.history[-1]["val_loss"] is None
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.metrics["val_accuracy"] is None and len(ckpt.split["val_indices"]) == 0
    assert json.loads(history_path(tmp_path / "m.pt").read_text())[-1]["val_accuracy"] is None
    assert format_accuracy(None).startswith("not measured")


def test_a_class_of_one_drawing_is_said_to_be_missing_from_the_held_out(shapes_dir, tmp_path):
    from quicksketch_lib.data import SketchData

    data = load_folder(shapes_dir)
    keep = np.concatenate([np.arange(0, 120), [120]])  # ring: one drawing
    few = SketchData(data.images[keep], data.labels[keep], data.classes, data.root)
    with pytest.warns(UserWarning, match="'ring' have a single drawing and none held out"):
        result = fit(_model(), few, TrainConfig(epochs=1, batch_size=32, max_batches=1), progress=False)
    assert result.val_accuracy is not None
