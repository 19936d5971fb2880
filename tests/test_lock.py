"""constraints.txt pins what the suite passed with; `make lock` rewrites it; torch stays free."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
FREE = ("torch", "triton", "stockpred")  # and nvidia-*: the build variant is the user's


def _pins(path: Path) -> dict[str, str]:
    """Package name (canonical) -> pinned version of a constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not name==version: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _requirements() -> list[Requirement]:
    """What pyproject.toml asks for: the dependencies and the dev extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def _is_free(name: str) -> bool:
    return name in FREE or name.startswith("nvidia-")


def test_the_lock_pins_every_requirement_within_its_range_and_leaves_torch_free() -> None:
    pins = _pins(ROOT / "constraints.txt")
    assert [name for name in pins if _is_free(name)] == []
    for req in _requirements():
        name = canonicalize_name(req.name)
        if _is_free(name):
            continue
        assert name in pins, f"{name} is not in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_the_suite_runs_on_the_locked_versions() -> None:
    # `make setup` installs with -c constraints.txt, so CI (a fresh clone) tests the lock
    pins = _pins(ROOT / "constraints.txt")
    drift = {}
    for req in _requirements():
        name = canonicalize_name(req.name)
        if not _is_free(name) and metadata.version(name) != pins[name]:
            drift[name] = (metadata.version(name), pins[name])
    assert drift == {}, "installed != locked: `make setup`, or `make lock` after `make test` passed"


@pytest.mark.slow  # runs make and pip freeze
def test_make_lock_writes_the_environment_without_torch(tmp_path: Path) -> None:
    out = tmp_path / "constraints.txt"
    venv = Path(sys.executable).parent.parent
    subprocess.run(
        ["make", "-s", "lock", f"VENV={venv}", f"CONSTRAINTS={out}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    pins = _pins(out)
    assert [name for name in pins if _is_free(name)] == []
    assert pins["mlflow"] == metadata.version("mlflow")
    assert pins["pytorch-lightning"] == metadata.version("pytorch-lightning")
    assert out.read_text().startswith("# The exact versions")
