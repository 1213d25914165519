"""Teaching a model a new class from a few drawings, and forgetting it (quicksketch_lib/teach.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quicksketch_lib.checkpoint import load_checkpoint, save_checkpoint
from quicksketch_lib.cli import main
from quicksketch_lib.data import load_folder
from quicksketch_lib.model import HEAD_KEY, HIDDEN_KEY
from quicksketch_lib.teach import (NewClass, Seen, TeachConfig, TeachError, calibrate_bias, class_from_pool,
                                   first_per_class, forget_class, load_drawings, replay_from_training_data,
                                   split_pool, taught_classes, teach_class)

from conftest import THE_TEN

FAST = TeachConfig(new_samples=40, replay_per_class=20, steps=100)


def triangles(n: int = 12, seed: int = 1) -> np.ndarray:
    """Outlined triangles of random size and place: a class the shapes model does not know."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28].astype(float)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(12, 16), rng.uniform(12, 16), rng.uniform(7, 10)
        inside = (yy < cy + r / 2) & (abs(xx - cx) < (yy - (cy - r)) * 0.6)
        edge = inside & ~((yy < cy + r / 2 - 2) & (abs(xx - cx) < (yy - (cy - r)) * 0.6 - 2))
        out[i][edge] = 255
    return out.reshape(n, 784)


@pytest.fixture(scope="module")
def shapes(shapes_checkpoint):
    ckpt = load_checkpoint(shapes_checkpoint)
    return ckpt, load_folder(ckpt.data["root"])


@pytest.fixture(scope="module")
def taught(shapes):
    ckpt, data = shapes
    return teach_class(ckpt, "triangle", triangles(), replay=data, config=FAST)


def test_teach_adds_one_output_row_and_two_hidden_units_and_records_what_was_taught(shapes, taught):
    ckpt, _ = shapes
    hidden = ckpt.model_config.hidden
    assert taught.classes == [*ckpt.classes, "triangle"]
    assert taught.model_config.num_classes == 4 and taught.model_config.hidden == hidden + 2
    assert taught.model_state[f"{HEAD_KEY}.weight"].shape == (4, hidden + 2)
    for k, v in ckpt.model_state.items():  # only the new row and the new units are new
        new = taught.model_state[k]
        if k == f"{HEAD_KEY}.weight":
            assert torch.equal(new[:3, :hidden], v) and not new[:3, hidden:].any(), k  # old rows: 0 on the units
        elif k.startswith(HEAD_KEY):
            assert torch.equal(new[:3], v), k
        elif k.startswith(HIDDEN_KEY):
            assert torch.equal(new[:hidden], v), k
        else:
            assert torch.equal(new, v), k
    assert taught.data["taught"][0]["hidden_units"] == 2
    assert taught_classes(taught) == ["triangle"]
    assert np.array_equal(taught.data["taught"][0]["drawings"].numpy(), triangles())
    assert taught_classes(ckpt) == []  # the original is untouched


def test_taught_class_is_recognised_and_the_old_ones_kept(shapes, taught):
    ckpt, data = shapes
    new = triangles(40, seed=7)  # unseen triangles
    proba = taught.build_model()(torch.from_numpy(new).float().view(-1, 1, 28, 28) / 127.5 - 1).argmax(1)
    assert (proba == 3).float().mean() >= 0.8
    x = torch.from_numpy(data.images).float().view(-1, 1, 28, 28) / 127.5 - 1
    before = ckpt.build_model()(x).argmax(1)
    after = taught.build_model()(x).argmax(1)
    assert (after == before).float().mean() >= 0.95


def test_taught_checkpoint_saves_and_loads_weights_only(taught, tmp_path):
    path = save_checkpoint(taught, tmp_path / "t.pt")
    d = torch.load(path, weights_only=True)
    assert d["classes"][-1] == "triangle" and d["data"]["taught"][0]["name"] == "triangle"
    again = load_checkpoint(path)
    assert taught_classes(again) == ["triangle"]
    assert torch.equal(again.model_state[f"{HEAD_KEY}.weight"], taught.model_state[f"{HEAD_KEY}.weight"])
    again.build_model()


def test_forget_restores_the_weights_exactly(shapes, taught):
    ckpt, data = shapes
    both = teach_class(taught, "blob", triangles(8, seed=3)[:, ::-1].copy(), replay=data, config=FAST)
    back = forget_class(forget_class(both, "triangle"), "blob")
    assert back.classes == ckpt.classes and back.model_config == ckpt.model_config
    assert all(torch.equal(back.model_state[k], v) for k, v in ckpt.model_state.items())
    assert "taught" not in back.data
    only_blob = forget_class(both, "triangle")  # the FIRST taught class: its row and its two units go
    assert only_blob.classes == [*ckpt.classes, "blob"]
    hidden = ckpt.model_config.hidden
    assert only_blob.model_config.hidden == hidden + 2
    kept = [*range(hidden), hidden + 2, hidden + 3]  # blob's units, after triangle's
    assert torch.equal(only_blob.model_state[f"{HEAD_KEY}.weight"], both.model_state[f"{HEAD_KEY}.weight"][[0, 1, 2, 4]][:, kept])
    x = torch.from_numpy(triangles(8, seed=5)).float().view(-1, 1, 28, 28) / 127.5 - 1
    with torch.no_grad():  # every other class's logit is what it was (to float rounding: a shorter sum)
        assert torch.allclose(only_blob.build_model().eval()(x), both.build_model().eval()(x)[:, [0, 1, 2, 4]],
                              atol=1e-5)


def test_a_taught_class_is_replayed_when_teaching_the_next(shapes, taught):
    second = teach_class(taught, "blob", triangles(8, seed=3)[:, ::-1].copy(), replay=shapes[1], config=FAST)
    assert taught_classes(second) == ["triangle", "blob"]
    x = torch.from_numpy(triangles()).float().view(-1, 1, 28, 28) / 127.5 - 1
    assert (second.build_model()(x).argmax(1) == 3).float().mean() >= 0.8


# --------------------------------------------------------------------------- the bias calibration
def replay_scores(new_scores_per_class: list[list[float]], wrong: int = 0):
    """Features that make the old head answer every replay drawing right with score 0 for its
    class (one-hot features, identity head, biases 0) except ``wrong`` drawings of class 0,
    and a new row scoring each drawing as given."""
    n_old = len(new_scores_per_class)
    feats, labels = [], []
    for c, scores in enumerate(new_scores_per_class):
        for s in scores:
            f = torch.zeros(n_old + 1)
            f[c], f[-1] = 1.0, s  # old class c scores 1, the rest 0; the new row reads the last feature
            feats.append(f)
            labels.append(c)
    feats, labels = torch.stack(feats), torch.tensor(labels)
    labels[:wrong] = 1  # those are answered as class 0 but belong to class 1: already wrong
    weight = torch.cat([torch.eye(n_old), torch.zeros(n_old, 1)], dim=1)
    return feats, labels, weight, torch.zeros(n_old), torch.cat([torch.zeros(n_old), torch.ones(1)])


def taken(feats, labels, weight, bias, w, b):
    """Replay drawings answered right by the old head and answered as the new class after."""
    right = (feats @ weight.T + bias).argmax(1) == labels
    new_wins = feats @ w + b > (feats @ weight.T + bias).max(1).values
    return torch.bincount(labels[right & new_wins], minlength=len(weight))


def test_calibration_takes_at_most_the_set_share_of_replay_drawings():
    scores = [[float(s) for s in np.linspace(-5, 5, 100)], [float(s) for s in np.linspace(-5, 0, 100)]]
    feats, labels, weight, bias, w = replay_scores(scores)
    b = calibrate_bias(w, torch.tensor(10.0), feats, labels, weight, bias, rate=0.05)
    assert taken(feats, labels, weight, bias, w, b).sum() <= 10  # 5 % of 200
    assert taken(feats, labels, weight, bias, w, b + 0.2).sum() > 10  # and not lower than it must be
    assert calibrate_bias(w, torch.tensor(-9.0), feats, labels, weight, bias, rate=0.05) == -9.0  # only lowers


def test_first_per_class_keeps_the_first_n_of_every_label_in_order():
    labels = torch.tensor([0, 0, 1, 0, 1, 2])
    assert first_per_class(labels, 2).tolist() == [0, 1, 2, 4, 5]
    assert first_per_class(labels, 0).tolist() == []
    assert first_per_class(labels, 9).tolist() == list(range(6))


def test_split_pool_fits_and_calibrates_on_different_drawings_of_every_class():
    labels = torch.tensor([0] * 10 + [1] * 4 + [2])
    fit, cal = split_pool(labels, 3, 5)
    assert fit.tolist() == [0, 1, 2, 10, 11, 14] and cal.tolist() == [3, 4, 5, 6, 7, 12, 13]
    # class 1 has 4 of the 8 asked for: split 3 : 5 as near as can be (2 and 2); class 2 has 1: fit on it
    assert not set(fit.tolist()) & set(cal.tolist())
    fit0, cal0 = split_pool(labels, 3, 0)  # no calibration drawings asked for: calibrate on the fit's own
    assert fit0.tolist() == cal0.tolist() == [0, 1, 2, 10, 11, 12, 14]
    fit_none, cal_all = split_pool(labels, 0, 5)  # no replay in the fit ("no replay" in teach_ablation.py)
    assert fit_none.tolist() == [] and cal_all.tolist() == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]


def test_the_old_logits_do_not_change_and_the_new_one_is_the_new_class_score(shapes, taught):
    """The two mirrored hidden units carry u . g exactly: the taught model's new logit is
    ``NewClass.score + b``, and the old classes' logits are what they were."""
    ckpt, _ = shapes
    x = torch.from_numpy(np.concatenate([triangles(6, seed=3), ckpt.data["replay"]["drawings"][ckpt.classes[0]][:6].numpy()
                                         if ckpt.data.get("replay") else triangles(6, seed=4)])).float()
    x = x.view(-1, 1, 28, 28) / 127.5 - 1
    before, after = ckpt.build_model().eval(), taught.build_model().eval()
    with torch.no_grad():
        old, new = before(x), after(x)
        g, hidden = after.body(x), ckpt.model_config.hidden
        state = taught.model_state
        w, u_rows = state[f"{HEAD_KEY}.weight"][-1, :hidden], state[f"{HIDDEN_KEY}.weight"][hidden:]
        base = before.embed(x)
        expected = base @ w + g @ u_rows[0] + state[f"{HEAD_KEY}.bias"][-1]
    assert torch.allclose(new[:, :3], old, atol=1e-5)
    assert torch.equal(u_rows[1], -u_rows[0])  # the mirrored pair
    assert torch.allclose(new[:, 3], expected, atol=1e-4)


def test_the_bias_is_calibrated_on_drawings_the_fit_did_not_see():
    torch.manual_seed(0)
    weight = torch.randn(3, 8)
    new_f = torch.randn(20, 8) + 2
    y = torch.arange(3).repeat_interleave(40)  # per class: 20 to fit on, then 20 to calibrate on
    feats = torch.randn(120, 8)
    feats[20] = new_f[0]  # class 0's first calibration drawing looks like the new class
    logits = F.one_hot(y, 3).float() * 3  # every replay drawing answered right, by 3 logits
    pool = Seen(torch.zeros(120, 0), feats, logits)
    config = TeachConfig(steps=20, read_body=False, false_positive_rate=0.0, per_class_rate=1.0,
                         replay_per_class=20, calibration_per_class=20)
    with_cal = class_from_pool(Seen(torch.zeros(20, 0), new_f, new_f @ weight.T), pool, y, weight, config)
    fit_part = first_per_class(y, 20)
    own = class_from_pool(Seen(torch.zeros(20, 0), new_f, new_f @ weight.T), pool.take(fit_part), y[fit_part],
                          weight, TeachConfig(**{**config.to_dict(), "calibration_per_class": 0}))
    assert isinstance(with_cal, NewClass) and torch.equal(with_cal.w, own.w)  # the same fit
    assert with_cal.b < own.b  # lowered for the drawing only the calibration part holds
    assert (feats[20] @ with_cal.w + with_cal.b).item() <= 3 + 1e-4  # at most level with its old answer


def test_teach_calibrates_on_a_larger_pool_of_the_training_data(shapes):
    ckpt, data = shapes
    config = TeachConfig(new_samples=40, replay_per_class=10, calibration_per_class=30, steps=100)
    taught = teach_class(ckpt, "triangle", triangles(), replay=data, config=config)
    assert taught.classes[-1] == "triangle"
    assert taught.data["taught"][0]["config"]["calibration_per_class"] == 30
    proba = taught.build_model()(torch.from_numpy(triangles(40, seed=7)).float().view(-1, 1, 28, 28) / 127.5 - 1)
    assert (proba.argmax(1) == 3).float().mean() >= 0.8


def test_the_margin_keeps_the_new_class_that_far_below_the_old_answers():
    """With ``margin`` m, the new class may come within m logits of the old answer on at most the
    set share of replay drawings: the bias is exactly m lower than without it."""
    scores = [[float(s) for s in np.linspace(-5, 5, 100)], [float(s) for s in np.linspace(-5, 0, 100)]]
    feats, labels, weight, bias, w = replay_scores(scores)
    plain = calibrate_bias(w, torch.tensor(10.0), feats, labels, weight, bias, rate=0.05)
    safe = calibrate_bias(w, torch.tensor(10.0), feats, labels, weight, bias, rate=0.05, margin=0.75)
    assert float(safe) == pytest.approx(float(plain) - 0.75)
    assert taken(feats, labels, weight, bias, w, safe + 0.75).sum() <= 10  # 5 % of 200, m logits higher
    assert TeachConfig().margin == 0.0  # the default: it calibrates on drawings the fit never saw


def test_the_per_class_guard_keeps_one_old_class_from_being_emptied():
    # class 0's drawings all look like the new class, class 1's not at all: 5 % of the whole replay
    # (10 drawings) would all come from class 0, i.e. 10 % of it; the guard allows 2 % of each class
    scores = [[3.0 + 0.01 * i for i in range(100)], [-5.0] * 100]
    feats, labels, weight, bias, w = replay_scores(scores)
    share_only = calibrate_bias(w, torch.tensor(10.0), feats, labels, weight, bias, rate=0.05)
    assert taken(feats, labels, weight, bias, w, share_only).tolist() == [10, 0]
    guarded = calibrate_bias(w, torch.tensor(10.0), feats, labels, weight, bias, rate=0.05, per_class_rate=0.02)
    assert taken(feats, labels, weight, bias, w, guarded).tolist() == [2, 0]


def test_drawings_the_old_classes_already_got_wrong_are_not_counted():
    scores = [[4.0] * 20 + [-5.0] * 80, [-5.0] * 100]
    feats, labels, weight, bias, w = replay_scores(scores, wrong=20)  # the 20 that look new are wrong already
    b = calibrate_bias(w, torch.tensor(10.0), feats, labels, weight, bias, rate=0.01, per_class_rate=0.01)
    new_wins = feats @ w + b > (feats @ weight.T + bias).max(1).values
    assert new_wins[:20].all() and taken(feats, labels, weight, bias, w, b).sum() == 0


@pytest.mark.parametrize("name, drawings, message", [
    ("triangle", triangles(4), "got 4 drawing(s); teaching a class needs at least 5"),
    ("Box", triangles(), "the model already knows a class 'box'"),
    ("  ", triangles(), "a class name cannot be empty"),
    ("triangle", np.vstack([triangles(6), np.zeros((1, 784), np.uint8)]), "1 of 7 drawings are blank"),
])
def test_clear_one_line_errors(shapes, name, drawings, message):
    ckpt, data = shapes
    with pytest.raises(TeachError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        teach_class(ckpt, name, drawings, replay=data, config=FAST)
    assert "\n" not in str(err.value)


def test_forget_refuses_classes_that_were_not_taught(shapes, taught):
    with pytest.raises(TeachError, match="it is one of the classes the model was trained on"):
        forget_class(taught, "box")
    with pytest.raises(TeachError, match="no class was taught to it"):
        forget_class(shapes[0], "triangle")


def test_replay_comes_from_the_recorded_folder_or_a_clear_error(shapes):
    ckpt, _ = shapes
    with pytest.warns(UserWarning, match="carries no replay drawings; reading them from"):
        teach_class(ckpt, "triangle", triangles(), config=FAST)
    ckpt_elsewhere = load_checkpoint(ckpt.path)
    ckpt_elsewhere.data = {**ckpt.data, "root": "/nonexistent/shapes"}
    with pytest.raises(TeachError, match="carries no replay drawings.*--data DIR"):
        teach_class(ckpt_elsewhere, "triangle", triangles(), config=FAST)


def test_replay_never_uses_the_recorded_held_out_split(shapes):
    ckpt, data = shapes
    replay = replay_from_training_data(ckpt, data, per_class=1000)
    held_out = {r.tobytes() for r in data.images[ckpt.split["val_indices"].numpy()]}
    drawn = [r.tobytes() for c in ckpt.classes for r in replay[c].numpy()]
    assert len(drawn) == len(data) - len(held_out) and not held_out & set(drawn)


def test_load_drawings_reads_npy_pictures_and_ndjson_strokes(tmp_path):
    from PIL import Image

    np.save(tmp_path / "rows.npy", triangles(3))
    Image.fromarray(255 - triangles(1).reshape(28, 28)).resize((112, 112)).save(tmp_path / "t.png")
    square = [[[0, 100, 100, 0, 0], [0, 0, 100, 100, 0], [0, 10, 20, 30, 40]]]
    (tmp_path / "s.ndjson").write_text(json.dumps({"word": "square", "drawing": square}) + "\n")
    rows = load_drawings([tmp_path / "rows.npy", tmp_path / "t.png", tmp_path / "s.ndjson"])
    assert rows.shape == (5, 784) and rows.dtype == np.uint8 and (rows.max(1) > 0).all()


def test_cli_teach_then_forget(shapes_checkpoint, tmp_path, capsys):
    np.save(tmp_path / "tri.npy", triangles())
    data_dir = load_checkpoint(shapes_checkpoint).data["root"]
    rc = main(["teach", str(shapes_checkpoint), "--name", "triangle", "--drawings", str(tmp_path / "tri.npy"),
               "--out", str(tmp_path / "t.pt"), "--data", data_dir, "--threads", "1"])
    assert rc == 0 and "taught 'triangle' from 12 drawings" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "t.pt").classes[-1] == "triangle"
    assert main(["teach", str(tmp_path / "t.pt"), "--forget", "triangle", "--out", str(tmp_path / "f.pt")]) == 0
    assert load_checkpoint(tmp_path / "f.pt").classes == load_checkpoint(shapes_checkpoint).classes


def test_cli_teach_sets_teach_config_fields(shapes_checkpoint, tmp_path, capsys):
    np.save(tmp_path / "tri.npy", triangles())
    data_dir = load_checkpoint(shapes_checkpoint).data["root"]
    rc = main(["teach", str(shapes_checkpoint), "--name", "triangle", "--drawings", str(tmp_path / "tri.npy"),
               "--out", str(tmp_path / "t.pt"), "--data", data_dir, "--set", "replay_per_class=10",
               "--set", "calibration_per_class=30", "--set", "new_class_weight=2", "--set", "steps=50"])
    assert rc == 0
    config = load_checkpoint(tmp_path / "t.pt").data["taught"][-1]["config"]
    assert (config["replay_per_class"], config["calibration_per_class"], config["new_class_weight"], config["steps"]) \
        == (10, 30, 2.0, 50)
    with pytest.raises(SystemExit) as exc:  # an unknown field is a one-line usage error, exit 2
        main(["teach", str(shapes_checkpoint), "--name", "t", "--drawings", str(tmp_path / "tri.npy"),
              "--out", str(tmp_path / "u.pt"), "--set", "seed=3"])
    assert exc.value.code == 2 and "TeachConfig field" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--name", "box"], "error: the model already knows a class 'box'"),
    (["--name", "few", "--drawings", "FEW"], "error: got 3 drawing(s); teaching a class needs at least 5"),
    (["--name", "blank", "--drawings", "BLANK"], "error: BLANK: 6 of 6 drawings are blank"),
    (["--forget", "box"], "error: cannot forget 'box'"),
])
def test_cli_errors_are_one_line_exit_3(shapes_checkpoint, tmp_path, capsys, args, message):
    np.save(tmp_path / "tri.npy", triangles())
    np.save(tmp_path / "few.npy", triangles(3))
    np.save(tmp_path / "blank.npy", np.zeros((6, 784), np.uint8))
    files = {"FEW": str(tmp_path / "few.npy"), "BLANK": str(tmp_path / "blank.npy")}
    args = [files.get(a, a) for a in args]
    if "--drawings" not in args and "--forget" not in args:
        args += ["--drawings", str(tmp_path / "tri.npy")]
    rc = main(["teach", str(shapes_checkpoint), *args, "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert rc == 3 and err.startswith(message.replace("BLANK", files["BLANK"])) and err.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


def test_cli_needs_a_name_and_drawings_or_forget(shapes_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # a usage error, like argparse's own: exit 2
        main(["teach", str(shapes_checkpoint), "--out", str(tmp_path / "x.pt")])
    assert info.value.code == 2
    assert "quicksketch teach: error: --name and --drawings are required" in capsys.readouterr().err


# --------------------------------------------------------------------------- the shipped model
def test_the_pretrained_model_carries_replay_drawings():
    ckpt = load_checkpoint("pretrained")
    replay = ckpt.data["replay"]["drawings"]
    assert sorted(replay) == sorted(THE_TEN) and all(len(v) >= 30 for v in replay.values())


def test_pretrained_learns_a_real_class_and_keeps_the_ten(quickdraw_dir):
    from quicksketch_lib.evaluation import class_probabilities, evaluation_set

    ckpt = load_checkpoint("pretrained")
    apples = np.load(quickdraw_dir / "apple.npy")
    taught = teach_class(ckpt, "apple", apples[:10])
    unseen = class_probabilities(taught.build_model(), apples[-150:], tta_flip=True).argmax(1)
    assert (unseen == 10).mean() >= 0.7
    images, labels, _ = evaluation_set(ckpt, load_folder(quickdraw_dir, classes=list(THE_TEN)))
    pick = np.random.default_rng(0).permutation(len(labels))[:400]
    before = class_probabilities(ckpt.build_model(), images[pick], tta_flip=True).argmax(1) == labels[pick]
    after = class_probabilities(taught.build_model(), images[pick], tta_flip=True).argmax(1) == labels[pick]
    assert after.mean() >= before.mean() - 0.03


def test_teaching_the_same_model_again_reuses_the_replays_body_features(shapes, monkeypatch):
    """The second teaching with the same replay runs the body only on its own drawings, and
    gives exactly the same class; a changed body weight is a cache miss, never stale features."""
    import quicksketch_lib.teach as teach

    ckpt, data = shapes
    replay = teach.replay_from_training_data(ckpt, data, FAST.pool_per_class)
    teach._BODY_CACHE.clear()
    seen_rows = []
    real = teach.body_features
    monkeypatch.setattr(teach, "body_features", lambda model, x, *a: seen_rows.append(len(x)) or real(model, x, *a))
    first = teach_class(ckpt, "triangle", triangles(), replay=replay, config=FAST)
    again = teach_class(ckpt, "triangle", triangles(), replay=replay, config=FAST)
    n_replay, n_new = sum(len(v) for v in replay.values()), 4 * len(triangles())  # 40 copies: 4 of each of 12
    assert seen_rows == [n_replay, n_new, n_new]  # the replay's features once
    assert all(torch.equal(first.model_state[k], again.model_state[k]) for k in first.model_state)
    changed = copy.deepcopy(ckpt)
    changed.model_state["features.0.0.weight"] = changed.model_state["features.0.0.weight"] * 1.001
    teach_class(changed, "triangle", triangles(), replay=replay, config=FAST)
    assert seen_rows[3:] == [n_replay, n_new]
