"""Tests for quicksketch_lib/download.py against local HTTP servers on 127.0.0.1 (no internet)."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from quicksketch_lib.download import DEFAULT_SOURCE, download_classes, is_online
from quicksketch_lib.drawing import parse_npy_header
from quicksketch_lib.errors import DownloadError

ROWS = 50


def _bitmaps(seed: int, rows: int = ROWS) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, 784), dtype=np.uint8)


def _ndjson_lines(word: str, n: int) -> bytes:
    lines = [json.dumps({"word": word, "countrycode": "US", "timestamp": "t", "recognized": True,
                         "key_id": str(i), "drawing": [[[0, i], [0, i]]]}) for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A folder laid out like Google's bucket: <class>.npy and <class>.ndjson."""
    root = tmp_path_factory.mktemp("bucket")
    for seed, name in enumerate(["cat", "smiley face"]):
        np.save(root / f"{name}.npy", _bitmaps(seed))
        (root / f"{name}.ndjson").write_bytes(_ndjson_lines(name, 30))
    np.save(root / "dog.npy", np.zeros((5, 28, 28), dtype=np.uint8))  # wrong shape
    return root


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with single-range support; records the Range headers it saw."""

    honour_range = True
    seen: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        type(self).seen.append((self.path, rng))
        if rng and self.honour_range:
            first, _, last = rng.removeprefix("bytes=").partition("-")
            first, last = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if first >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            body = data[first:last + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # client stopped reading early
            pass


class NoRangeHandler(RangeHandler):
    honour_range = False
    seen: list = []


@contextlib.contextmanager
def _serve(handler, folder: Path):
    """Serve ``folder`` on a free local port inside the block; gives the base URL and the
    list of (path, Range header) requests the handler saw."""
    cls = type(handler.__name__, (handler,), {"seen": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: cls(*a, directory=str(folder), **k))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cls.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def range_server(served):
    with _serve(RangeHandler, served) as server:
        yield server


@pytest.fixture()
def norange_server(served):
    with _serve(NoRangeHandler, served) as server:
        yield server


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def test_range_requests_fetch_header_then_first_rows(range_server, tmp_path):
    url, seen = range_server
    (path,) = download_classes(["cat"], tmp_path, per_class=7, source=url, progress=False)
    assert path == tmp_path / "cat.npy"
    arr = np.load(path)
    assert arr.shape == (7, 784) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, _bitmaps(0)[:7])
    ranges = [r for _, r in seen]
    assert ranges[0] == "bytes=0-1023"  # header probe
    assert ranges[-1] == f"bytes=1024-{128 + 7 * 784 - 1}"  # only the rows needed
    assert _leftovers(tmp_path) == []


def test_class_names_with_spaces_are_quoted(range_server, tmp_path):
    url, seen = range_server
    (path,) = download_classes(["smiley face"], tmp_path, per_class=3, source=url, progress=False)
    assert path.name == "smiley face.npy"
    np.testing.assert_array_equal(np.load(path), _bitmaps(1)[:3])
    assert all(p == "/smiley%20face.npy" for p, _ in seen)


def test_server_ignoring_range_is_streamed_and_cut(norange_server, tmp_path):
    url, seen = norange_server
    (path,) = download_classes(["cat"], tmp_path, per_class=4, source=url, progress=False)
    np.testing.assert_array_equal(np.load(path), _bitmaps(0)[:4])
    assert _leftovers(tmp_path) == []


def test_whole_file_when_per_class_is_none_or_larger(range_server, tmp_path):
    url, _ = range_server
    (path,) = download_classes(["cat"], tmp_path, per_class=None, source=url, progress=False)
    np.testing.assert_array_equal(np.load(path), _bitmaps(0))
    (path,) = download_classes(["cat"], tmp_path / "more", per_class=10_000, source=url,
                               progress=False)
    assert np.load(path).shape == (ROWS, 784)


def test_resumes_from_partial_part_file(range_server, served, tmp_path):
    url, seen = range_server
    full = (served / "cat.npy").read_bytes()
    (tmp_path / "cat.npy.part").write_bytes(full[:2000])  # an earlier run broke off here
    (path,) = download_classes(["cat"], tmp_path, per_class=10, source=url, progress=False)
    np.testing.assert_array_equal(np.load(path), _bitmaps(0)[:10])
    assert [r for _, r in seen] == [f"bytes=2000-{128 + 10 * 784 - 1}"]  # header read locally
    assert _leftovers(tmp_path) == []


def test_partial_part_is_restarted_when_server_ignores_range(norange_server, served, tmp_path):
    url, _ = norange_server
    (tmp_path / "cat.npy.part").write_bytes((served / "cat.npy").read_bytes()[:2000])
    (path,) = download_classes(["cat"], tmp_path, per_class=10, source=url, progress=False)
    np.testing.assert_array_equal(np.load(path), _bitmaps(0)[:10])


def test_existing_subset_is_kept(range_server, tmp_path):
    url, seen = range_server
    download_classes(["cat"], tmp_path, per_class=5, source=url, progress=False)
    seen.clear()
    download_classes(["cat"], tmp_path, per_class=5, source=url, progress=False)
    assert seen == []


def test_failed_download_leaves_no_npy(range_server, tmp_path):
    url, _ = range_server
    with pytest.raises(DownloadError, match=r"dog.*shape \(5, 28, 28\).*expected \(N, 784\)"):
        download_classes(["dog"], tmp_path, per_class=2, source=url, progress=False)
    assert not (tmp_path / "dog.npy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_truncated_server_file_keeps_part_and_says_resume(tmp_path):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    np.save(bucket / "cat.npy", _bitmaps(0))
    data = (bucket / "cat.npy").read_bytes()
    (bucket / "cat.npy").write_bytes(data[:128 + 3 * 784])  # header says 50 rows, has 3
    with _serve(RangeHandler, bucket) as (url, _):
        with pytest.raises(DownloadError, match="ended after .* run again to resume"):
            download_classes(["cat"], tmp_path / "out", per_class=10, source=url, progress=False)
    assert not (tmp_path / "out" / "cat.npy").exists()
    assert (tmp_path / "out" / "cat.npy.part").exists()


def test_missing_file_on_server_is_one_clear_error(range_server, tmp_path):
    url, _ = range_server
    with pytest.raises(DownloadError, match=r"cow\.npy: HTTP 404"):
        download_classes(["cow"], tmp_path, per_class=2, source=url, progress=False)


def test_ndjson_first_lines_over_http(range_server, norange_server, tmp_path):
    for url, _ in (range_server, norange_server):
        out = tmp_path / url.rsplit(":", 1)[1]
        (path,) = download_classes(["cat"], out, per_class=12, source=url, fmt="ndjson-raw",
                                   progress=False)
        lines = path.read_text().splitlines()
        assert len(lines) == 12 and json.loads(lines[-1])["key_id"] == "11"
        (path,) = download_classes(["smiley face"], out, source=url, fmt="ndjson-simplified",
                                   progress=False)
        assert len(path.read_text().splitlines()) == 30
        assert _leftovers(out) == []


def test_unknown_class_names_it_and_suggests(tmp_path):
    with pytest.raises(DownloadError, match=r"unknown Quick Draw class 'smiley'.*'smiley face'"):
        download_classes(["cat", "smiley"], tmp_path, source=str(tmp_path), progress=False)
    with pytest.raises(DownloadError, match=r"'Cat'.*'cat'"):
        download_classes(["Cat"], tmp_path, progress=False)


def test_bad_format_and_per_class(tmp_path):
    with pytest.raises(DownloadError, match="unknown format 'png'"):
        download_classes(["cat"], tmp_path, fmt="png")
    with pytest.raises(DownloadError, match="per_class=0"):
        download_classes(["cat"], tmp_path, per_class=0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line(tmp_path):
    port = _closed_port()
    with pytest.raises(DownloadError) as info:
        download_classes(["cat"], tmp_path, per_class=3, source=f"http://127.0.0.1:{port}/qd",
                         progress=False, timeout=5)
    message = str(info.value)
    assert message.startswith(f"cannot reach 127.0.0.1:{port}") and "--source" in message
    assert "\n" not in message and "synthetic doodles" in message
    assert not (tmp_path / "cat.npy").exists()
    assert not is_online("127.0.0.1", timeout=1, port=port)


def test_local_folder_source(served, tmp_path):
    paths = download_classes(["cat", "smiley face"], tmp_path, per_class=6, source=served,
                             progress=False)
    np.testing.assert_array_equal(np.load(paths[1]), _bitmaps(1)[:6])
    (path,) = download_classes(["cat"], tmp_path / "nd", per_class=4, source=str(served),
                               fmt="ndjson-raw", progress=False)
    assert len(path.read_text().splitlines()) == 4
    with pytest.raises(DownloadError, match="has no cow.npy"):
        download_classes(["cow"], tmp_path, source=served, progress=False)
    with pytest.raises(DownloadError, match="not a folder or URL"):
        download_classes(["cat"], tmp_path, source=tmp_path / "nowhere", progress=False)


def test_parse_npy_header_needs_whole_header(served):
    data = (served / "cat.npy").read_bytes()
    assert parse_npy_header(data[:5]) == 12
    assert parse_npy_header(data[:60]) == 128
    assert parse_npy_header(data[:200]) == ((ROWS, 784), np.dtype(np.uint8), False, 128)
    with pytest.raises(ValueError):
        parse_npy_header(b"not a numpy file at all")


def test_default_source_is_googles_bucket():
    assert DEFAULT_SOURCE == "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap"
