"""How fast the command line starts: wall seconds of `quicksketch --help`, `quicksketch predict
--help` and a warm-cache `quicksketch predict pretrained drawing.png`, each next to
`python -c pass` measured in the same run (the ratio is what carries between machines).

    .venv/bin/python scripts/startup_times.py [--repeats 15] [--json OUT.json]

Every command runs as a fresh process, in rounds (one of each per round, so a change of the
machine's load hits all alike); the median of the rounds is reported, in wall seconds and in CPU
seconds (user + system) of the process: on a busy machine the wall time also counts the wait
for a core, the CPU time does not. The warm cache is made
first: the ONNX export of the shipped model in a private cache folder ($XDG_CACHE_HOME), so the
timed predictions import no torch. The README's "How fast it starts" states the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENTRY = Path(sys.executable).parent / "quicksketch"  # the installed command, as a user runs it
CLI = [str(ENTRY)] if ENTRY.is_file() else [sys.executable, "-m", "quicksketch_lib"]
TARGETS = {"quicksketch --help": 0.3, "quicksketch predict pretrained drawing.png": 1.0}  # seconds (issue 21)


def cpu_description() -> str:
    """lscpu's model name and whether it has AVX-512, bf16 or AMX (Linux; else platform's words)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    extras = [name for name, found in (("avx512", any(f.startswith("avx512") for f in flags)),
                                       ("bf16", any("bf16" in f for f in flags)),
                                       ("amx", any(f.startswith("amx") for f in flags))) if found]
    return f"{fields.get('Model name', '?').strip()}, {os.cpu_count()} cores, " \
           f"{'+'.join(extras) if extras else 'no avx512/bf16/amx'}"


def drawing_png(folder: Path) -> Path:
    """A drawing of a house, 256x256, dark on light (like a picture a user would give)."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (256, 256), 255)
    pen = ImageDraw.Draw(image)
    pen.line([(40, 120), (40, 240), (216, 240), (216, 120), (40, 120)], fill=0, width=8)
    pen.line([(30, 125), (128, 20), (226, 125)], fill=0, width=8)
    path = folder / "drawing.png"
    image.save(path)
    return path


def seconds(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        png = drawing_png(Path(tmp))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import numpy, onnxruntime, PIL'": [sys.executable, "-c", "import numpy, onnxruntime, PIL"],
            "quicksketch --help": [*CLI, "--help"],
            "quicksketch predict --help": [*CLI, "predict", "--help"],
            "quicksketch predict pretrained drawing.png": [*CLI, "predict", "pretrained", str(png)],
        }
        cold = seconds(commands["quicksketch predict pretrained drawing.png"], env)  # exports into the cache
        times = {name: [] for name in commands}
        load = [os.getloadavg()[0]]
        for _ in range(repeats):
            for name, command in commands.items():
                times[name].append(seconds(command, env))
        load.append(os.getloadavg()[0])
    base_wall = statistics.median(w for w, _ in times["python -c pass"])
    base_cpu = statistics.median(c for _, c in times["python -c pass"])
    rows = {}
    for name, runs in times.items():
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        rows[name] = {"wall_s": statistics.median(wall), "wall_p90_s": float(np.percentile(wall, 90)),
                      "wall_ratio": statistics.median(wall) / base_wall,
                      "cpu_s": statistics.median(cpu), "cpu_ratio": statistics.median(cpu) / base_cpu}
    return {"cpu": cpu_description(), "python": platform.python_version(), "repeats": repeats,
            "load_average": load, "first_predict": {"wall_s": cold[0], "cpu_s": cold[1]}, "commands": rows}


def format_table(result: dict) -> str:
    lines = [f"CPU: {result['cpu']}; Python {result['python']}; load average (1 min) "
             + " -> ".join(f"{x:.1f}" for x in result["load_average"]) + f"; median of {result['repeats']} rounds",
             f"{'command':<48}{'wall s':>8}{'p90':>7}{'x pass':>8}{'CPU s':>8}{'x pass':>8}  target"]
    for name, row in result["commands"].items():
        target = f"< {TARGETS[name]} s" if name in TARGETS else ""
        lines.append(f"{name:<48}{row['wall_s']:>8.3f}{row['wall_p90_s']:>7.2f}{row['wall_ratio']:>8.1f}"
                     f"{row['cpu_s']:>8.3f}{row['cpu_ratio']:>8.1f}  {target}")
    first = result["first_predict"]
    lines.append(f"first predict, which exports the ONNX model into the cache: {first['wall_s']:.1f} s wall, "
                 f"{first['cpu_s']:.1f} s CPU")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="also write the figures as JSON")
    args = parser.parse_args()
    result = measure(args.repeats)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
