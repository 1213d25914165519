import numpy as np
import pytest
import torch

from quicksketch_lib import locations
from quicksketch_lib.data import (BatchLoader, QuickDrawNPY, find_data, load_folder, make_subset, shard_indices,
                                  normalize_batch, normalize_rows, stratified_split)
from quicksketch_lib.errors import DataError


def test_load_folder_labels_from_sorted_file_names(shapes_dir):
    data = load_folder(shapes_dir)
    assert data.classes == ["box", "cross", "ring"]
    assert data.images.dtype == np.uint8 and data.images.shape == (180, 784)
    assert data.counts == [60, 60, 60]
    assert np.array_equal(data.images[60], np.load(shapes_dir / "cross.npy")[0])


def test_per_class_cap_and_class_subset(shapes_dir):
    data = load_folder(shapes_dir, classes=["ring", "box"], per_class=10)
    assert data.classes == ["box", "ring"] and data.counts == [10, 10]


def test_dataset_sample_is_normalised_1x28x28(shapes_dir):
    ds = QuickDrawNPY(shapes_dir)
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 0
    raw = np.load(shapes_dir / "box.npy")[0].reshape(28, 28) / 255.0
    assert torch.allclose(x[0], torch.from_numpy((raw - 0.5) / 0.5).float())
    assert x.min() >= -1 and x.max() <= 1


def test_dataset_transform_replaces_normalisation(shapes_dir):
    x, _ = QuickDrawNPY(shapes_dir, transform=None)[0]
    assert 0 <= x.min() and x.max() <= 1


def test_batch_loader_matches_the_per_sample_dataset(shapes_dir):
    ds = QuickDrawNPY(shapes_dir)
    loader = BatchLoader(ds.data.images, ds.data.labels, batch_size=64)
    x, y = next(iter(loader))
    assert x.shape == (64, 1, 28, 28)
    assert torch.allclose(x[5], ds[5][0]) and y[5] == ds[5][1]
    assert len(loader) == 3 and sum(len(b[1]) for b in loader) == 180


def test_batch_loader_shuffles_reproducibly_per_epoch(shapes_dir):
    data = load_folder(shapes_dir)
    a = BatchLoader(data.images, data.labels, 32, shuffle=True, seed=1)
    b = BatchLoader(data.images, data.labels, 32, shuffle=True, seed=1)
    first = [y for _, y in a]
    assert all(torch.equal(p, q) for p, q in zip(first, [y for _, y in b]))
    a.set_epoch(1)
    assert not torch.equal(torch.cat(first), torch.cat([y for _, y in a]))
    assert sorted(torch.cat([y for _, y in a]).tolist()) == sorted(data.labels.tolist())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fits", [True, False], ids=["data-on-gpu", "pinned-copies"])
def test_batch_loader_on_a_gpu_gives_the_cpu_batches(shapes_dir, monkeypatch, fits):
    """Both GPU paths: the whole uint8 array on the device, or (too big for it) each batch
    gathered on the CPU, pinned and copied without blocking. Same drawings in the same order
    as on the CPU; the normalised values may differ in the last bit (the GPU's division
    rounds differently: seen on an H200), so images are compared to float32 rounding."""
    import quicksketch_lib.data as data_module

    monkeypatch.setattr(data_module, "_fits_on", lambda *a, **k: fits)
    data = load_folder(shapes_dir)
    cpu = BatchLoader(data.images, data.labels, 32, shuffle=True, seed=1, channels_last=True)
    gpu = BatchLoader(data.images, data.labels, 32, shuffle=True, seed=1, channels_last=True, device="cuda")
    assert gpu.images.is_cuda == fits
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and yg.is_cuda
        assert torch.equal(yg.cpu(), yc)
        torch.testing.assert_close(xg.cpu(), xc, rtol=0, atol=1e-6)


def test_normalize_batch_maps_0_255_to_minus1_1():
    x = normalize_batch(torch.tensor([[0] * 783 + [255]], dtype=torch.uint8))
    assert x.shape == (1, 1, 28, 28) and x.min() == -1 and x.max() == 1


def test_stratified_split_is_seeded_disjoint_and_per_class():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    tr, va = stratified_split(labels, 0.1, seed=3)
    tr2, va2 = stratified_split(labels, 0.1, seed=3)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert not set(tr) & set(va) and len(tr) + len(va) == len(labels)
    assert np.bincount(labels[va]).tolist() == [10, 5, 3, 2]
    assert not np.array_equal(va, stratified_split(labels, 0.1, seed=4)[1])


def test_make_subset_is_deterministic(shapes_dir, tmp_path):
    make_subset(shapes_dir, tmp_path / "a", per_class=7, seed=2)
    make_subset(shapes_dir, tmp_path / "b", per_class=7, seed=2)
    for name in ("box", "cross", "ring"):
        a, b = np.load(tmp_path / "a" / f"{name}.npy"), np.load(tmp_path / "b" / f"{name}.npy")
        assert a.shape == (7, 784) and np.array_equal(a, b)
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left


# ---------------------------------------------------------------- bad data: one clear line each
def _folder(tmp_path, **arrays):
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr)
    return tmp_path


def _error(path, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_folder(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_and_empty_folders(tmp_path):
    assert "not found" in _error(tmp_path / "nope")
    assert "no .npy class files" in _error(tmp_path)


def test_wrong_shape_names_file_and_expectation(tmp_path):
    ok = np.zeros((3, 784), np.uint8)
    msg = _error(_folder(tmp_path, a=ok, b=np.zeros((3, 28, 28), np.uint8)))
    assert "b.npy" in msg and "(3, 28, 28)" in msg and "(N, 784) uint8" in msg


def test_wrong_dtype_nan_and_out_of_range(tmp_path):
    ok = np.zeros((3, 784), np.uint8)
    floats = np.zeros((3, 784), np.float32)
    floats[0, 0] = np.nan
    assert "NaN" in _error(_folder(tmp_path, a=ok, b=floats))
    (tmp_path / "b.npy").unlink()
    msg = _error(_folder(tmp_path, a=ok, c=np.full((3, 784), 300, np.int32)))
    assert "c.npy" in msg and "int32" in msg and "outside 0..255" in msg


def test_truncated_and_non_numpy_files(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 784), np.uint8))
    full = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "b.npy").write_bytes(full[: len(full) // 2])
    assert "b.npy" in _error(tmp_path) and "truncated" in _error(tmp_path)
    (tmp_path / "b.npy").write_text("hello, not numpy")
    assert "b.npy" in _error(tmp_path)


def test_single_class_zero_drawings_and_case_duplicates(tmp_path):
    ok = np.zeros((3, 784), np.uint8)
    assert "at least 2 class" in _error(_folder(tmp_path, cat=ok))
    _folder(tmp_path, dog=np.zeros((0, 784), np.uint8))
    assert "0 drawings" in _error(tmp_path)
    (tmp_path / "dog.npy").unlink()
    _folder(tmp_path, Cat=ok)
    assert "differ only in case" in _error(tmp_path)


def test_hidden_files_are_skipped_with_a_warning(tmp_path):
    ok = np.zeros((3, 784), np.uint8)
    _folder(tmp_path, a=ok, b=ok)
    np.save(tmp_path / ".c.npy", ok)
    with pytest.warns(UserWarning, match="skipped 1 hidden file"):
        assert load_folder(tmp_path).classes == ["a", "b"]


def test_unknown_class_and_memory_guard(shapes_dir):
    assert "'zebra'" in _error(shapes_dir, classes=["box", "zebra"])
    assert "--per-class" in _error(shapes_dir, max_bytes=1000)


def test_mapped_images_read_the_same_rows_lazily(shapes_dir):
    eager = load_folder(shapes_dir, per_class=50)
    lazy = load_folder(shapes_dir, per_class=50, mapped=True)
    assert lazy.images.shape == eager.images.shape and np.array_equal(lazy.labels, eager.labels)
    idx = np.array([0, 49, 50, 120, 149])
    assert np.array_equal(lazy.images[idx], eager.images[idx])
    assert np.array_equal(lazy.images[10:60], eager.images[10:60])
    assert np.array_equal(lazy.images[77], eager.images[77])


def test_shard_indices_give_every_rank_every_class_and_equal_counts():
    labels = np.repeat(np.arange(3), [40, 31, 20])
    train, _ = stratified_split(labels, 0.1, seed=0)
    shards = [shard_indices(train, labels, r, 3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])
    assert all(set(labels[s]) == {0, 1, 2} for s in shards)
    assert sum(map(len, shards)) >= len(train) - 3 and set(np.concatenate(shards)) <= set(train)
    assert np.array_equal(shard_indices(train, labels, 0, 1), train)


def test_label_order_is_the_sorted_file_names_with_or_without_a_class_list(tmp_path):
    # "house plant.npy" sorts before "house.npy" (' ' < '.') although "house" < "house plant"
    for name in ("house", "house plant", "The Mona Lisa"):
        np.save(tmp_path / f"{name}.npy", np.zeros((2, 784), np.uint8))
    everything = load_folder(tmp_path).classes
    assert everything == ["The Mona Lisa", "house plant", "house"]
    assert load_folder(tmp_path, classes=["house", "house plant", "The Mona Lisa"]).classes == everything


def test_find_data_generates_the_offline_default_on_first_use(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.ENV_DATA, raising=False)
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    assert find_data(generate=False).kind == "offline-default" and not (tmp_path / "data").exists()
    source = find_data(per_class=3)
    assert source.kind == "offline-default" and (source.path / "SYNTHETIC.txt").is_file()
    assert len(list(source.path.glob("*.npy"))) == 10



def test_normalize_rows_equals_normalize_batch_without_torch():
    rows = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    x = normalize_rows(rows)
    assert x.dtype == np.float32 and x.shape == (5, 1, 28, 28)
    assert np.array_equal(x, normalize_batch(torch.from_numpy(rows)).numpy())


# --------------------------------------------------------------------------- per-drawing fingerprints
def test_row_hashes_name_a_drawing_wherever_it_is(shapes_dir):
    from quicksketch_lib.data import row_hashes

    rows = np.load(shapes_dir / "box.npy")
    h = row_hashes(rows)
    assert h.dtype == np.uint32 and len(h) == 60 and len(np.unique(h)) == 60
    assert np.array_equal(row_hashes(rows[::-1]), h[::-1])  # a drawing's number, not its place
    assert np.array_equal(row_hashes(rows.reshape(-1, 28, 28)), h)
    assert np.array_equal(row_hashes(rows, np.array([5, 2])), h[[5, 2]])
    changed = rows[:1].copy()
    changed[0, 400] ^= 1  # one pixel differs by one level: another drawing
    assert row_hashes(changed)[0] != h[0]
    # fixed for all time (recorded in checkpoints): the first 4 bytes of BLAKE2b, big-endian
    assert row_hashes(np.zeros((1, 784), np.uint8))[0] == int.from_bytes(
        __import__("hashlib").blake2b(bytes(784), digest_size=4).digest(), "big")


def test_row_fingerprints_find_copies_and_round_trip(shapes_dir):
    from quicksketch_lib.data import ROW_HASH, RowFingerprints

    rows = np.load(shapes_dir / "ring.npy")
    known = RowFingerprints.of(rows[:40])
    assert len(known) == 40 and (np.diff(known.values.astype(np.int64)) > 0).all()
    assert known.contains(rows).tolist() == [True] * 40 + [False] * 20
    again = RowFingerprints.from_dict(known.to_dict())
    assert np.array_equal(again.values, known.values) and known.to_dict()["hash"] == ROW_HASH
    assert known.to_dict()["values"].dtype == torch.int32  # a plain tensor: weights_only loads it
    assert known.false_match_rate() == pytest.approx(40 / 2**32, rel=1e-6)
    assert len(known.union(RowFingerprints.of(rows[30:]))) == 60
    assert not RowFingerprints(np.zeros(0, np.uint32)).contains(rows).any()


@pytest.mark.parametrize("record, message", [
    ("abc", "not 'blake2b-32'"),
    ({"hash": "md5", "values": torch.zeros(3, dtype=torch.int32)}, "not 'blake2b-32'"),
    ({"hash": "blake2b-32", "values": [1, 2]}, "1-D int32 tensor"),
    ({"hash": "blake2b-32", "values": torch.tensor([3, 1, 2], dtype=torch.int32)}, "sorted"),
])
def test_row_fingerprints_refuse_a_record_they_did_not_write(record, message):
    from quicksketch_lib.data import RowFingerprints

    with pytest.raises(ValueError, match=message):
        RowFingerprints.from_dict(record)
