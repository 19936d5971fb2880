"""The code's shape holds: the layer contract bites, every module sits in a layer, names are unique."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "stockpred"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract_layers() -> list[str]:
    """The modules named in the layers contract of pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in layers["layers"] for m in layer.replace("|", ":").split(":")]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` run on a copy of the project at `tree`, importing that copy's code."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The code and pyproject.toml copied, so a test can add a bad import without touching src/."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=ignore)
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_every_module_of_the_package_is_in_a_layer() -> None:
    named = set(_contract_layers())
    children = {
        f"stockpred.{p.stem}"
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
    }
    assert children - named == set(), "add these modules to a layer in pyproject.toml"
    assert named - children - {"flows"} == set(), "the contract names modules that do not exist"


def test_no_two_modules_share_a_basename() -> None:
    # A task package's files are named by the shape every task shares (ARCHITECTURE.md).
    shape = {"task.py", "baselines.py", "figures.py"}
    names = Counter(
        p.name
        for p in SRC.rglob("*.py")
        if p.name != "__init__.py" and not (p.parent.parent.name == "tasks" and p.name in shape)
    )
    assert [name for name, n in names.items() if n > 1] == []


@pytest.mark.slow  # runs lint-imports
def test_the_contract_holds_on_the_code_as_it_is(project_copy: Path) -> None:
    out = _lint_imports(project_copy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.slow  # runs lint-imports
@pytest.mark.parametrize(
    ("module", "code", "contract"),
    [
        # a new core module reaching up to an application, inside a function
        ("tasks/upward.py", "def f():\n    from stockpred import pipeline\n", "layers"),
        ("config.py", "def f():\n    import stockpred.features\n", "layers"),  # base -> core
        ("data/load.py", "def f():\n    import mlflow\n", "only code that imports mlflow"),
        ("pipeline.py", "def f():\n    import prefect\n", "only code that imports prefect"),
    ],
)
def test_a_forbidden_import_fails_the_lint(
    project_copy: Path, module: str, code: str, contract: str
) -> None:
    path = project_copy / "src" / "stockpred" / module
    before = path.read_text() if path.exists() else '"""A module that breaks the contract."""\n'
    path.write_text(f"{before}\n\n{code}")
    out = _lint_imports(project_copy)
    assert out.returncode == 1, out.stdout + out.stderr
    broken = [line for line in out.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1 and contract in broken[0], out.stdout
