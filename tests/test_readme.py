"""The README stays a front door: short, its links resolve, and every command it shows is checked."""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent

# What each `make` target the README shows must run (the expensive ones are checked by their
# recipe, not run: `make test` is the whole suite).
MAKE_RECIPES = {
    "run": "python -m flows.train_flow",  # volatility, the default task
    "test": "python -m pytest --cov",
    "test-fast": 'python -m pytest -m "not slow"',
    "serve": "python -m flows.deploy --local-server",
    "ui": "stockpred ui",
    "notebooks": "jupyter lab",
    "docs": "mkdocs build --strict",
}


def _blocks(kind: str) -> list[str]:
    """The fenced code blocks of the README in language ``kind``."""
    return re.findall(rf"^```{kind}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def _commands() -> list[str]:
    """Every command line of the README's bash blocks, without its comment."""
    lines = [line for block in _blocks("bash") for line in block.splitlines()]
    return [re.split(r"\s+#\s", line)[0].strip() for line in lines if line.strip()]


def _transcripts() -> list[tuple[str, list[str]]]:
    """``$ command`` lines of the README's text blocks, each with the output lines shown under it."""
    out: list[tuple[str, list[str]]] = []
    for block in _blocks("text"):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out and line.strip():
                out[-1][1].append(line)
    return out


def _recipe(target: str) -> str:
    """The prerequisites and recipe lines of one Makefile target."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:(.*?)(?:\n\n|\Z)", makefile, re.MULTILINE | re.DOTALL)
    assert match, f"the Makefile has no target {target!r}"
    return match.group(1)


def _run(command: str) -> subprocess.CompletedProcess[str]:
    """A README command with .venv/bin/ meaning this interpreter's folder."""
    argv = shlex.split(command)
    argv[0] = str(BIN / Path(argv[0]).name)
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_is_a_front_door_of_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= 200


def test_every_link_of_the_readme_resolves() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links, "the README links to the docs"
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert missing == []


def test_every_command_the_readme_shows_is_checked_here() -> None:
    runnable = {"stockpred config --window 40", "python -m flows.train_flow --help"}
    unchecked = []
    for command in _commands():
        words = command.split()
        if words[0] == "make":
            continue
        if " ".join([Path(words[0]).name, *words[1:]]) not in runnable:
            unchecked.append(command)
    assert unchecked == [], "check these in tests/test_readme.py"
    assert {c.split()[1] for c in _commands() if c.startswith("make ")} <= set(MAKE_RECIPES)


@pytest.mark.parametrize("target", sorted(MAKE_RECIPES))
def test_each_make_target_runs_what_the_readme_says(target: str) -> None:
    assert MAKE_RECIPES[target] in _recipe(target)


def test_make_test_lints_first_and_ci_runs_make_test() -> None:
    assert _recipe("test").split("##")[0].split() == ["lint"]
    assert "lint-imports" in _recipe("lint")
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


@pytest.mark.slow  # runs the README's commands as subprocesses
def test_the_readme_commands_run_and_print_what_it_shows() -> None:
    config = _run(".venv/bin/stockpred config --window 40")
    assert config.returncode == 0, config.stderr
    assert '"window": 40' in config.stdout
    flow_help = _run(".venv/bin/python -m flows.train_flow --help")
    assert flow_help.returncode == 0, flow_help.stderr
    assert flow_help.stdout.startswith("usage: python -m flows.train_flow")
    assert "prefect" not in flow_help.stderr.lower()
    transcripts = _transcripts()
    assert transcripts, "the README shows at least one command with its output"
    for command, shown in transcripts:
        done = _run(command)
        printed = (done.stdout + done.stderr).splitlines()
        assert [line for line in shown if line not in printed] == [], command


def test_the_report_call_the_readme_shows_exists() -> None:
    from stockpred.report import render_report

    (block,) = _blocks("python")
    assert "from stockpred.report import render_report" in block
    assert next(iter(inspect.signature(render_report).parameters)) == "run_id"
