"""The docs site builds offline with warnings as errors, and its reference pages come from the code."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from stockpred.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")


def _generator() -> ModuleType:
    """docs/_generate.py, the MkDocs hook, imported as a module."""
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "_generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of ``project`` (its mkdocs.yml and docs/) into ``site``."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_site_sources(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ in a scratch folder (the hook finds the code through PYTHONPATH)."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    return project


def test_the_config_reference_lists_every_key_with_its_default() -> None:
    page = _generator().config_reference()
    defaults = PipelineConfig().model_dump(mode="json")
    for section, fields in defaults.items():
        for name in fields:
            assert f"| `{section}.{name}` |" in page
    assert "| `model.window` | int | `60` | ≥ 2, ≤ 1000 |" in page
    assert "| `target.kind` | return \\| volatility |" in page


def test_the_cli_reference_holds_every_commands_help() -> None:
    from stockpred.cli import build_parser

    page = _generator().cli_reference()
    (commands,) = [a for a in build_parser()._actions if hasattr(a, "choices") and a.choices]
    for name in commands.choices:
        assert f"### `stockpred {name}`" in page
    assert "### `python -m flows.train_flow`" in page and "--resume RUN_ID" in page


def test_the_metrics_reference_names_each_tasks_selection_metric() -> None:
    from stockpred.tasks import TASKS

    page = _generator().metrics_reference()
    for kind, task in TASKS.items():
        assert f"| `{kind}` |" in page and f"`{task.selection_metric}`" in page


def test_an_unknown_generated_block_fails_the_build() -> None:
    with pytest.raises(ValueError, match="unknown generated block 'nonsense'"):
        _generator().on_page_markdown("# x\n\n<!-- generated: nonsense -->\n")


@pytest.mark.slow  # runs mkdocs in a subprocess
def test_the_site_builds_offline_with_warnings_as_errors(tmp_path: Path) -> None:
    site = tmp_path / "site"
    out = _build(ROOT, site)
    assert out.returncode == 0, out.stderr
    config_page = (site / "reference" / "config" / "index.html").read_text()
    assert "train.learning_rate" in config_page and "generated:" not in config_page
    assert "stockpred backtest" in (site / "reference" / "cli" / "index.html").read_text()


@pytest.mark.slow  # runs mkdocs in a subprocess
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ("link", "nowhere.md"),  # a link to a page that does not exist
        ("orphan", "orphan.md"),  # a page left out of the nav
    ],
)
def test_a_broken_link_or_a_page_outside_the_nav_fails_the_build(
    tmp_path: Path, change: str, complaint: str
) -> None:
    project = _copy_site_sources(tmp_path)
    if change == "link":
        index = project / "docs" / "index.md"
        index.write_text(index.read_text() + "\nSee [nowhere](nowhere.md).\n")
    else:
        (project / "docs" / "orphan.md").write_text("# Orphan\n")
    out = _build(project, tmp_path / "site")
    assert out.returncode != 0
    assert complaint in out.stderr + out.stdout
