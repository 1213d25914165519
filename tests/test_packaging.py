"""The two install paths (pip via pyproject.toml, conda via environment.yml) agree, and
nothing runs at import time."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from import_floors import import_floors, sibling_imports  # noqa: E402  (the one reading of a module's imports)


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(r.split("==") for r in reqs)


def _conda_pins() -> dict[str, str]:
    pins = re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==([^\s]+)$", (ROOT / "environment.yml").read_text(), re.M)
    return dict(pins)


def test_every_dependency_is_pinned_and_torch_is_2_13():
    pins = _pyproject_pins()
    assert pins["torch"] == "2.13.0"
    assert {"numpy", "onnx", "onnxruntime", "jupyterlab", "matplotlib", "ipywidgets", "nbval"} <= set(pins)


def test_environment_yml_lists_the_same_pins():
    assert _conda_pins() == _pyproject_pins()
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_importing_the_library_does_no_work():
    code = ("import sys, quicksketch_lib, quicksketch_lib.cli; "
            "assert 'torch' not in sys.modules, 'torch imported at package import'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_ci_runs_the_readme_test_command():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_gitignore_keeps_out_venv_data_weights_and_caches():
    ignored = (ROOT / ".gitignore").read_text()
    for pattern in (".venv/", "data/*", "models/*", "__pycache__/", ".ipynb_checkpoints/"):
        assert pattern in ignored


def test_package_map_lists_every_module_and_each_imports_only_modules_above_it():
    """quicksketch_lib/__init__.py's map is the layered reading order of all modules."""
    package = ROOT / "quicksketch_lib"
    doc = (package / "__init__.py").read_text()
    listed = re.findall(r"^    ([a-z_]+) {2,}\S", doc, re.M)
    assert sorted(listed) == sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("__"))
    for i, name in enumerate(listed):
        imported = sibling_imports((package / f"{name}.py").read_text())
        assert imported <= set(listed[:i]), f"{name} imports {sorted(imported - set(listed[:i]))}, listed below it"
    import_floors(package)  # counts the floors CONTRIBUTING.md "Architecture" lists; raises on a cycle


def test_every_script_imports_and_its_names_exist():
    """The scripts behind the README's figures still import (a name moved in the library or in a
    sibling script is an ImportError here, not at the next measurement) and run nothing on import."""
    import importlib

    for path in sorted((ROOT / "scripts").glob("*.py")):
        assert '__name__ == "__main__"' in path.read_text(), f"{path.name} runs on import"
        importlib.import_module(path.stem)
