"""quicksketch_lib/locations.py: which data, which checkpoint, where to write."""

from quicksketch_lib import locations
from quicksketch_lib.locations import PRETRAINED, PRETRAINED_PATH, data_source, find_checkpoint, resolve_checkpoint


def test_data_source_prefers_the_environment_variable(monkeypatch, shapes_dir):
    monkeypatch.setenv("QUICKSKETCH_DATA", str(shapes_dir))
    source = data_source()
    assert source.path == shapes_dir and source.kind == "env"
    assert "QUICKSKETCH_DATA" in source.describe()


def test_data_source_falls_back_to_the_offline_default_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.ENV_DATA, raising=False)
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    source = data_source()
    assert source.path == tmp_path / "data" / "synthetic" and source.kind == "offline-default"
    assert not source.path.exists()  # locations only decides


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
