"""Print the import floors of quicksketch_lib (CONTRIBUTING.md "Architecture").

A module's floor is 0 when it imports no other module of the package, else one more than the
highest floor among the modules it imports -- counting every ``from .x import`` and
``from . import x``, at the top of the file or inside a function (a lazy import is still a
dependency). The number of floors is the length of the longest chain of imports; a cycle is
reported instead (tests/test_packaging.py refuses both a cycle and an upward import).

    .venv/bin/python scripts/import_floors.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "quicksketch_lib"


def sibling_imports(source: str) -> set[str]:
    """The modules of the package a module's source imports (top-level or lazily)."""
    found = set(re.findall(r"^\s*from \.(\w+) import", source, re.M))
    found |= {m for line in re.findall(r"^\s*from \. import (.+)$", source, re.M) for m in re.split(r",\s*", line)}
    return found


def import_floors(package: Path = PACKAGE) -> dict[str, int]:
    """Module name -> floor; raises ValueError naming a cycle."""
    deps = {p.stem: sibling_imports(p.read_text()) for p in package.glob("*.py") if not p.stem.startswith("__")}
    floors: dict[str, int] = {}

    def floor(name: str, chain: tuple[str, ...] = ()) -> int:
        if name in chain:
            raise ValueError(f"import cycle: {' -> '.join(chain + (name,))}")
        if name not in floors:
            floors[name] = 1 + max((floor(d, chain + (name,)) for d in deps[name] & deps.keys()), default=-1)
        return floors[name]

    for name in deps:
        floor(name)
    return floors


def main() -> None:
    try:
        floors = import_floors()
    except ValueError as exc:
        sys.exit(str(exc))
    top = max(floors.values())
    print(f"{len(floors)} modules on {top + 1} floors, no cycle")
    for level in range(top + 1):
        print(f"  {level}: {' '.join(sorted(m for m, f in floors.items() if f == level))}")


if __name__ == "__main__":
    main()
