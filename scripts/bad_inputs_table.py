"""Run a representative subset of issue 14's hostile inputs against a QuickSketch tree and
print case -> exit code -> last message line (and peak memory where it matters).

    python scripts/bad_inputs_table.py [TREE]     # TREE: a checkout to test (default: this one)

Used for the issue's before/after table: run it once on the original code (e.g. an
exported ``git archive b3c6808``) and once on this tree. Each case is a subprocess with a
time limit, so a hang shows as "hung"; scratch files go to a temporary folder.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TREE = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
SHARED = Path("/work/shared/data/quickdraw")


def run(args: list[str], cwd: Path, limit: float = 120) -> tuple[str, str, float]:
    """(exit code or 'hung', last stderr/stdout line, peak MB) of ``quicksketch ARGS``."""
    code = ("import resource, runpy, sys; sys.argv = ['quicksketch'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('quicksketch_lib', run_name='__main__')\n"
            "finally:\n    print(f'@@maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(TREE), "OMP_NUM_THREADS": "1"}
    try:
        p = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return "hung", f"(killed after {limit:g} s)", 0.0
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    rss = next((int(ln.split()[1]) / 1024 for ln in err if ln.startswith("@@maxrss")), 0.0)
    err = [ln for ln in err if not ln.startswith("@@maxrss")]
    tb = any(ln.startswith("Traceback") for ln in err)
    last = (err[-1] if err else (p.stdout.strip().splitlines() or [""])[-1]).strip()
    return f"{p.returncode}{' TB' if tb else ''}", last[:150], rss


class Drip(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100000):
                self.wfile.write(b"\x93")
                self.wfile.flush()
                time.sleep(5)
        except OSError:
            pass


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="qs-table-"))
    d = work / "d"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("box", "cross", "ring"):
        np.save(d / f"{name}.npy", rng.integers(0, 256, (60, 784), dtype=np.uint8))
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    pics = work / "pics"
    pics.mkdir()
    Image.new("L", (300, 300), 255).save(pics / "white.png")
    Image.fromarray(rng.integers(247, 254, (300, 300), dtype=np.uint8)).save(pics / "paper.png")
    big = Image.new("1", (6000, 6000), 1)
    ImageDraw.Draw(big).ellipse((1500, 1500, 4500, 4500), outline=0, width=60)
    big.save(pics / "big.png")
    white_on_clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(white_on_clear).ellipse((60, 60, 240, 240), outline=(255, 255, 255, 255), width=8)
    white_on_clear.save(pics / "white_on_transparent.png")
    (work / "empty.pt").write_bytes(b"")
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 784), np.uint8))
    header["shape"] = (10**12, 784)
    with open(work / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 200)
    (work / "notes.npy").write_text("hello, these are notes\n")
    (work / "file").write_text("x")
    (work / "dir.json").mkdir()
    src0 = work / "src0"
    src0.mkdir()
    (src0 / "cat.npy").write_bytes(b"")
    train = ["train", "--data", str(d), "--epochs", "1", "--max-batches", "1", "--threads", "1", "--quiet"]
    cases = [
        ("subset D D --per-class 10", ["subset", str(d), str(d), "--per-class", "10"]),
        ("subset D <existing file>", ["subset", str(d), str(work / "file"), "--per-class", "10"]),
        ("download from a 1-byte-per-5-s server", ["download", "--classes", "cat", "--per-class", "5",
                                                   "--out", str(work / "dl"), "--source", url, "--quiet"]),
        ("download without --source (offline)", ["download", "--classes", "cat", "--per-class", "5",
                                                 "--out", str(work / "dl2"), "--quiet"]),
        ("download --per-class 0", ["download", "--per-class", "0", "--out", str(work / "dl3")]),
        ("download --format csv", ["download", "--format", "csv", "--out", str(work / "dl3")]),
        ("download from a 0-byte local file", ["download", "--classes", "cat", "--source", str(src0),
                                               "--out", str(work / "dl4")]),
        ("predict 6000x6000 1-bit PNG (MB)", ["predict", "pretrained", str(pics / "big.png")]),
        ("predict blank white picture", ["predict", "pretrained", str(pics / "white.png")]),
        ("predict paper noise 250+-3", ["predict", "pretrained", str(pics / "paper.png")]),
        ("predict white strokes on transparent", ["predict", "pretrained", str(pics / "white_on_transparent.png")]),
        ("predict 10^12-row .npy header", ["predict", "pretrained", str(work / "huge.npy")]),
        ("predict text file named .npy", ["predict", "pretrained", str(work / "notes.npy")]),
        ("predict --top-k -1", ["predict", "pretrained", str(work / "notes.npy"), "--top-k", "-1"]),
        ("0-byte checkpoint", ["predict", str(work / "empty.pt"), str(work / "notes.npy")]),
        ("train --batch-size 0", train + ["--batch-size", "0", "--out", str(work / "b0.pt")]),
        ("train --lr nan", train + ["--lr", "nan", "--out", str(work / "nan.pt")]),
        ("train --lr inf", train + ["--lr", "inf", "--out", str(work / "inf.pt")]),
        ("train --seed -1", train + ["--seed", "-1", "--out", str(work / "s.pt")]),
        ("train --device cuda (no GPU)", train + ["--device", "cuda", "--out", str(work / "c.pt")]),
        ("train --threads 0", train + ["--threads", "0", "--out", str(work / "t.pt")]),
        ("train --recipe fast", train + ["--recipe", "fast", "--out", str(work / "r.pt")]),
        ("train --per-class 0", train + ["--per-class", "0", "--out", str(work / "p.pt")]),
        ("train (a good run, for the next cases)", train + ["--out", str(work / "ok.pt")]),
        ("train --resume, epochs reached", train + ["--out", str(work / "ok.pt"), "--resume"]),
        ("train --resume --lr 0.01", train + ["--epochs", "2", "--lr", "0.01", "--out", str(work / "ok.pt"),
                                              "--resume"]),
        ("train --resume --recipe quicksketch", train + ["--epochs", "2", "--recipe", "quicksketch",
                                                         "--out", str(work / "ok.pt"), "--resume"]),
        ("train --out <a folder>", train + ["--out", str(work / "dir.json")]),
        ("evaluate --per-class 0", ["evaluate", str(work / "ok.pt"), "--data", str(d), "--per-class", "0"]),
        ("evaluate --json <a folder>", ["evaluate", str(work / "ok.pt"), "--data", str(d), "--json",
                                        str(work / "dir.json")]),
        ("export --opset 1", ["export", str(work / "ok.pt"), "--opset", "1", "--out", str(work / "o1.onnx")]),
    ]
    if SHARED.is_dir():
        cases.append(("evaluate pretrained --per-class 1000, other cwd",
                      ["evaluate", "pretrained", "--data", str(SHARED), "--per-class", "1000"]))
    print(f"tree {TREE}")
    for name, args in cases:
        code, last, rss = run(args, work, limit=90 if "server" in name else 300)
        mem = f" [peak {rss:,.0f} MB]" if "MB" in name else ""
        if "evaluate pretrained" in name:
            out = subprocess.run([sys.executable, "-m", "quicksketch_lib", *args], cwd=work, capture_output=True,
                                 text=True, env={**os.environ, "PYTHONPATH": str(TREE)}).stdout.splitlines()
            last = " / ".join(out[:2])[:200]
        print(f"{name:<45} | {code:<6} | {last}{mem}", flush=True)
    changed = {p.name for p in d.iterdir() if p.read_bytes() != before.get(p.name)}
    print(f"{'data folder changed by the runs':<45} | {'yes: ' + ', '.join(sorted(changed)) if changed else 'no'}")
    modes = sorted({oct(p.stat().st_mode & 0o777) for p in (work / "ok.pt", ) if p.exists()})
    print(f"{'mode of the written checkpoint (umask 022)':<45} | {', '.join(modes)}")
    server.shutdown()


if __name__ == "__main__":
    main()
