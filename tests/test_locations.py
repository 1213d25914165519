"""quicksketch_lib/locations.py: which data, which checkpoint, where to write."""

from quicksketch_lib import locations
from quicksketch_lib.locations import PRETRAINED, PRETRAINED_PATH, find_checkpoint, find_data, resolve_checkpoint


def test_find_data_prefers_the_environment_variable(monkeypatch, shapes_dir):
    monkeypatch.setenv("QUICKSKETCH_DATA", str(shapes_dir))
    source = find_data(generate=False)
    assert source.path == shapes_dir and source.kind == "env"
    assert "QUICKSKETCH_DATA" in source.describe()


def test_data_falls_back_to_the_offline_default_without_generating(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.ENV_DATA, raising=False)
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    source = find_data(generate=False)
    assert source.path == tmp_path / "data" / "synthetic" and source.kind == "offline-default"
    assert not source.path.exists()  # generate=False: nothing written


def test_drawing_checkpoint_search_ends_with_the_pretrained_model(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.ENV_CHECKPOINT, raising=False)
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    assert find_checkpoint() == (PRETRAINED_PATH, "the shipped pretrained model of the ten classes")
    demo = tmp_path / "models" / "demo.pt"
    demo.parent.mkdir()
    demo.write_bytes(b"")
    assert find_checkpoint() == (demo, "written by `make demo`")


def test_pretrained_names_the_shipped_model():
    assert resolve_checkpoint(PRETRAINED) == PRETRAINED_PATH and PRETRAINED_PATH.is_file()
    assert str(resolve_checkpoint("models/x.pt")) == "models/x.pt"
