"""The walkthrough notebooks as a learner reads them (CONTRIBUTING "Notebooks under test").

nbval runs the notebooks and compares their outputs; these tests read every committed
``notebooks/*.ipynb`` as it is (nothing is executed) and check the page itself:

1. **Numbers come from code.** Every measured number in a markdown cell's prose -- a percentage
   (``95.28 %``, ``95%``, ``30–100 %``), a time (``14 ms``, ``2.97 s``, ``3.7 min``), a file size
   (``8.9 MB``), a ratio (``3.1×``, ``7x``) or a count with thousands separators (``4,000``) -- must
   appear in a text output of a code cell of the same notebook or in a committed file under
   ``notebooks/runs/``. "Appears" means: a number of the same kind is printed there (any unit of
   time or size, converted; for percentages also a fraction such as ``0.9528`` stored in a runs
   file) which, rounded to as many decimals as the prose writes, is the prose's number. So prose
   ``95.3 %`` or ``95 %`` matches a printed ``95.28%``, prose ``95.2 %`` does not, and prose
   ``1.0 ms`` matches a printed ``0.98 ms``. Counts match exactly (``4,000`` matches a printed
   ``4000`` or ``4,000``, not ``4,012``). Signs are ignored (prose says "lost", the output ``-5``).
   Not read as prose: code spans and fenced code (code, run by nbval), link targets, HTML
   comments. A number that is no measurement -- a rule or a setting, such as the game's
   20 seconds -- is declared in an HTML comment of its cell, ``<!-- not measured: "20 seconds"
   (the game's time limit) -->``: a decision a reviewer sees, like an ``NBVAL_IGNORE_OUTPUT``.
2. **No absolute path of any machine** (``/work/...``, ``/home/...``, ``/tmp/...``,
   ``C:\\Users\\...``) in a committed output or in markdown: a learner's checkout is elsewhere.
3. **No markdown cell over 250 words** (HTML comments and image attachments not counted).
4. **Solutions are tagged and collapsed.** Every cell tagged ``solution`` is collapsed in
   JupyterLab (``metadata.jupyter`` ``source_hidden`` and ``outputs_hidden``); every "Exercises"
   section has its exercises (``**1. ...**``) each followed by a solution code cell before the
   next exercise, and each solution explains itself in a solution-tagged markdown cell.
5. **No stored widget state.** A notebook's metadata holds no ``widgets`` entry (JupyterLab saves
   every live widget's state there: hundreds of kB of a past session that nbval does not check).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUNS = ROOT / "notebooks" / "runs"
MAX_WORDS = 250

# ------------------------------------------------------------------------------ numbers
_NUM = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"  # 4,000 | 95 | 95.28 (group 1: digits, group 2: decimals)
_START = r"(?<![\w.,/])"  # not the tail of a word, a number or a version (v1.2.3, 0x7f)
# unit -> (kind, factor to the kind's base unit: seconds, bytes)
UNITS = {
    "ns": ("time", Decimal("1e-9")), "µs": ("time", Decimal("1e-6")), "us": ("time", Decimal("1e-6")),
    "ms": ("time", Decimal("0.001")), "s": ("time", Decimal(1)), "sec": ("time", Decimal(1)),
    "second": ("time", Decimal(1)), "seconds": ("time", Decimal(1)),
    "min": ("time", Decimal(60)), "mins": ("time", Decimal(60)), "minute": ("time", Decimal(60)),
    "minutes": ("time", Decimal(60)), "h": ("time", Decimal(3600)), "hour": ("time", Decimal(3600)),
    "hours": ("time", Decimal(3600)),
    "KB": ("size", Decimal(10**3)), "kB": ("size", Decimal(10**3)), "MB": ("size", Decimal(10**6)),
    "GB": ("size", Decimal(10**9)), "KiB": ("size", Decimal(2**10)), "MiB": ("size", Decimal(2**20)),
    "GiB": ("size", Decimal(2**30)),
    "%": ("percent", Decimal(1)), "×": ("ratio", Decimal(1)), "x": ("ratio", Decimal(1)),
}
_UNIT = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
# a number, an optional range partner ("30–100 %"), then its unit; a ratio must not be a size
# such as 28×28 or 256 × 4 × 4, a time unit must end the word ("2 seconds", not "2 sides")
QUANTITY = re.compile(
    _START + _NUM + r"(?:\s?[–-]\s?" + _NUM + r")?[\s\u00a0\u202f]?-?(" + _UNIT + r")(?![\w%])(?!\s?\d)",
)
COUNT = re.compile(_START + r"(\d{1,3}(?:,\d{3})+)(?![\d,]|\.\d)")
PLAIN = re.compile(_START + r"-?(\d+)(?:\.(\d+))?(?:e-?\d+)?")


@dataclass(frozen=True)
class Quantity:
    kind: str  # percent, time, size, ratio, count
    value: Decimal  # in the kind's base unit (seconds, bytes); a percent in percent
    unit: str
    decimals: int  # as written
    text: str


def _decimal(digits: str, decimals: str | None) -> Decimal:
    return Decimal(digits.replace(",", "") + ("." + decimals if decimals else ""))


def quantities(text: str) -> list[Quantity]:
    """Every percentage, time, size, ratio and thousands-separated count in ``text``."""
    found, taken = [], []
    text = text.replace("½", ".5")  # "6½ min"
    for m in QUANTITY.finditer(text):
        kind, factor = UNITS[m.group(5)]
        for digits, decimals in ((m.group(1), m.group(2)), (m.group(3), m.group(4))):
            if digits is not None:
                found.append(Quantity(kind, _decimal(digits, decimals) * factor, m.group(5),
                                      len(decimals or ""), m.group(0).strip()))
        taken.append(m.span())
    for m in COUNT.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):
            found.append(Quantity("count", _decimal(m.group(1), None), "", 0, m.group(0)))
    return found


def _rounded(value: Decimal, decimals: int) -> set[Decimal]:
    step = Decimal(1).scaleb(-decimals)
    return {value.quantize(step, rounding=r) for r in (ROUND_HALF_UP, ROUND_HALF_EVEN)}


def printed_quantities(text: str) -> list[Quantity]:
    """What an output shows: its quantities, and every integer in it as a count."""
    return quantities(text) + [Quantity("count", _decimal(m.group(1), None), "", 0, m.group(0))
                               for m in PLAIN.finditer(text) if not m.group(2)]


def appears(claim: Quantity, printed: list[Quantity]) -> bool:
    """``claim`` (from prose) is one of ``printed``, rounded as the prose rounds (module docstring)."""
    factor = UNITS[claim.unit][1] if claim.unit else Decimal(1)
    target = abs(claim.value / factor)
    for p in printed:
        if p.kind != claim.kind:
            continue
        if claim.kind == "count":
            if p.value == claim.value:
                return True
        elif target in _rounded(abs(p.value / factor), claim.decimals):
            return True
    return False


# ------------------------------------------------------------------------------ reading a notebook
def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def output_texts(cell: dict) -> list[str]:
    """The text a reader sees of a code cell's outputs (images are not text)."""
    texts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            texts.append(_text(out["text"]))
        elif out["output_type"] == "error":
            texts.append("\n".join(out.get("traceback", [])) + out.get("evalue", ""))
        else:
            for mime, data in out.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    texts.append(data if isinstance(data, str) else _text(data) if isinstance(data, list)
                                 else json.dumps(data))
    return texts


NOT_MEASURED = re.compile(r"<!--\s*not measured:(.*?)-->", re.S)


def prose(markdown: str) -> str:
    """What a learner reads as sentences: no code, link targets, HTML comments or attachments."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # [label](target) -> [label]
    text = re.sub(r"<https?://[^>]*>|https?://\S+", " ", text)
    return re.sub(r"<[^>]+>", " ", text)  # <details>, <summary>, <br> ...


def words(markdown: str) -> int:
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text = re.sub(r"!\[[^\]]*\]\(attachment:[^)]*\)", " ", text)
    return len(text.split())


def runs_quantities() -> list[Quantity]:
    """What the committed files under notebooks/runs/ record: their printed figures, and for
    JSON files every fraction as a percentage and every ``*seconds`` value as a time."""
    found: list[Quantity] = []
    for path in sorted(RUNS.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += quantities(text)
        if path.suffix == ".json":
            found += _json_quantities(json.loads(text))
    return found


def _json_quantities(node, key: str = "") -> list[Quantity]:
    if isinstance(node, dict):
        return [q for k, v in node.items() for q in _json_quantities(v, str(k))]
    if isinstance(node, list):
        return [q for v in node for q in _json_quantities(v, key)]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return []
    value = Decimal(repr(node))
    found = [Quantity("count", value, "", 0, repr(node))] if isinstance(node, int) else []
    if 0 <= node <= 1:
        found.append(Quantity("percent", value * 100, "%", 0, repr(node)))
    if "second" in key:
        found.append(Quantity("time", value, "s", 0, repr(node)))
    return found


def unsupported_numbers(path: Path, runs: list[Quantity]) -> list[str]:
    """Each prose number of the notebook that no output and no runs file shows."""
    cells = load(path)
    printed = list(runs)
    for cell in cells:
        if cell["cell_type"] == "code":
            for text in output_texts(cell):
                printed += printed_quantities(text)
    missing = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        source = _text(cell["source"])
        declared = " ".join(NOT_MEASURED.findall(source))
        for claim in quantities(prose(source)):
            if claim.text in declared or appears(claim, printed):
                continue
            missing.append(f"cell {i}: {claim.text!r} ({claim.kind})")
    return missing


# ------------------------------------------------------------------------------ paths
# An absolute path: a "/" that starts a token (not inside a URL, a fraction or a relative path)
# followed by at least two path segments, or a Windows drive path.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:\\-])/[\w.@+-]+(?:/[\w.@+-]*)+|\b[A-Za-z]:\\\\?[\w.-]")


def absolute_paths(text: str) -> list[str]:
    return [m.group(0) for m in ABSOLUTE_PATH.finditer(re.sub(r"[a-z][\w+.-]*://\S+", " ", text))]


# ------------------------------------------------------------------------------ solutions
EXERCISE = re.compile(r"^(?:\*\*(\d+)\.|(\d+)\.\s+\*\*)", re.M)  # **1. Title.** or 1. **Title.**
HEADING = re.compile(r"^(#+)\s+(.*)$", re.M)


def is_solution(cell: dict) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


def solution_problems(path: Path) -> list[str]:
    cells, problems = load(path), []
    for i, cell in enumerate(cells):
        hidden = cell.get("metadata", {}).get("jupyter", {})
        if is_solution(cell) and not (hidden.get("source_hidden") and hidden.get("outputs_hidden")):
            problems.append(f"cell {i}: a solution not collapsed (metadata.jupyter source_hidden and outputs_hidden)")
    # exercises in order: (cell index, number); a solution belongs to the exercise above it
    in_exercises, exercises = False, []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown" or is_solution(cell):
            continue
        source = _text(cell["source"])
        for m in HEADING.finditer(source):
            in_exercises = "exercise" in m.group(2).lower()
        if in_exercises or "exercise" in source.lower():
            exercises += [(i, m.group(1) or m.group(2)) for m in EXERCISE.finditer(prose(source))]
    if any("## exercises" in _text(c["source"]).lower() for c in cells if c["cell_type"] == "markdown") \
            and not exercises:
        problems.append("an 'Exercises' section without numbered exercises (**1. ...**)")
    for k, (start, number) in enumerate(exercises):
        end = exercises[k + 1][0] if k + 1 < len(exercises) and exercises[k + 1][0] > start else len(cells)
        if k + 1 < len(exercises) and exercises[k + 1][0] == start:
            problems.append(f"cell {start}: exercise {number} has no solution before exercise "
                            f"{exercises[k + 1][1]} (same cell)")
            continue
        after = cells[start + 1:end]
        if not any(is_solution(c) and c["cell_type"] == "code" for c in after):
            problems.append(f"cell {start}: exercise {number} has no solution code cell (tag 'solution')")
        if not any(is_solution(c) and c["cell_type"] == "markdown" for c in after):
            problems.append(f"cell {start}: exercise {number}'s solution has no solution-tagged "
                            "markdown cell explaining it")
    return problems


# ------------------------------------------------------------------------------ the tests
def test_every_walkthrough_notebook_is_checked():
    assert len(NOTEBOOKS) >= 6, [p.name for p in NOTEBOOKS]


@pytest.fixture(scope="module")
def runs() -> list[Quantity]:
    return runs_quantities()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_in_the_prose_are_printed_by_code_or_recorded_in_runs(path, runs):
    missing = unsupported_numbers(path, runs)
    assert not missing, (f"{path.name}: numbers in markdown that no code output and no file under "
                         f"notebooks/runs/ shows (print them, or declare a non-measurement with "
                         f"<!-- not measured: \"...\" -->):\n  " + "\n  ".join(missing))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_absolute_path_in_outputs_or_markdown(path):
    found = []
    for i, cell in enumerate(load(path)):
        texts = output_texts(cell) if cell["cell_type"] == "code" else [_text(cell["source"])]
        found += [f"cell {i}: {p}" for text in texts for p in absolute_paths(text)]
    assert not found, f"{path.name}: absolute paths of a machine:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "runs").iterdir()), ids=lambda p: p.name)
def test_no_absolute_path_in_the_committed_runs(path):
    found = absolute_paths(path.read_text(encoding="utf-8"))
    assert not found, (f"runs/{path.name}: absolute paths of a machine (write the path the command was given, "
                       f"e.g. data/quickdraw): {sorted(set(found))[:5]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_stored_widget_state(path):
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert "widgets" not in metadata, (f"{path.name} stores widget state in its metadata: delete "
                                       "metadata['widgets'] (CONTRIBUTING, re-executing a notebook)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_markdown_cell_over_250_words(path):
    long = [f"cell {i}: {words(_text(c['source']))} words" for i, c in enumerate(load(path))
            if c["cell_type"] == "markdown" and words(_text(c["source"])) > MAX_WORDS]
    assert not long, f"{path.name}: markdown cells over {MAX_WORDS} words (split or cut):\n  " + "\n  ".join(long)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_collapsed_solution_that_explains_itself(path):
    problems = solution_problems(path)
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_the_rules_read_numbers_paths_and_exercises_as_documented():
    printed = printed_quantities("accuracy 95.28% | 13.95 ms per drawing | 2.3 MB | 4000 held-out | 3.1x")
    claims = {text: quantities(text)[0] for text in (
        "95.28 %", "95.3 %", "95%", "14 ms", "0.014 s", "2.3 MB", "4,000", "3×", "3.1x")}
    for text, claim in claims.items():
        assert appears(claim, printed), text
    for text in ("95.2 %", "13.9 ms", "4,012", "2.4 MB", "3.2×", "96 %"):
        assert not appears(quantities(text)[0], printed), text
    assert [q.text for q in quantities("a 28×28 bitmap, 256 × 4 × 4 values, Conv3x3, v1.2 %")] == []
    assert {q.value for q in quantities("the first 30–100 % of its ink")} == {30, 100}
    assert absolute_paths("wrote /work/wt-12a/models/x.onnx; C:\\Users\\me") == ["/work/wt-12a/models/x.onnx", "C:\\U"]
    assert absolute_paths("see https://netron.app/x/y, models/x.onnx and 1/2/3 or x / 127.5") == []
    assert prose("`95.28 %` in code, [a link](https://x.org/95%) <!-- 96 % -->").count("%") == 0
