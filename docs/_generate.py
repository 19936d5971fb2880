"""MkDocs hook: the reference pages' tables, generated from the code at build time so they stay true.

A page asks for one with a marker line, ``<!-- generated: config -->`` (the pydantic config),
``cli`` (every argparse parser of ``stockpred`` and the flows) or ``metrics`` (the task registry).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each marker with its generated Markdown; an unknown name fails the build."""
    # this checkout's code, whatever .venv's editable install points at (MkDocs restores
    # sys.path after loading a hook, so this happens here)
    for path in (ROOT, ROOT / "src"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated block {name!r}: one of {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def _type_name(annotation: Any) -> str:
    """A config field's type as a reader writes it: ``int | auto``, ``parkinson | yang_zhang``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: Any) -> str:
    """The numeric and length bounds pydantic checks, e.g. ``≥ 1, ≤ 250``."""
    marks = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥"}
    marks["max_length"] = "length ≤"
    out = []
    for item in field.metadata:
        for attr, mark in marks.items():
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{mark} {value}")
    return ", ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    """One table per section of ``PipelineConfig``: key, type, default, bounds, meaning."""
    from stockpred.config import PipelineConfig

    defaults = PipelineConfig().model_dump(mode="json")
    out = []
    for section, field in PipelineConfig.model_fields.items():
        model = field.annotation
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"### `{section}`", "", doc, ""]
        out += ["| key | type | default | bounds | meaning |", "|---|---|---|---|---|"]
        for name, sub in model.model_fields.items():
            default = json.dumps(defaults[section][name])
            out.append(
                f"| `{section}.{name}` | {_type_name(sub.annotation)} | `{_cell(default)}` "
                f"| {_bounds(sub)} | {_cell(sub.description or '')} |"
            )
        out.append("")
    return "\n".join(out)


def _help(parser: argparse.ArgumentParser) -> str:
    """A parser's ``--help`` at a fixed width, so the page does not depend on the terminal."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help().rstrip()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _block(title: str, parser: argparse.ArgumentParser) -> list[str]:
    return [f"### `{title}`", "", "```text", _help(parser), "```", ""]


def cli_reference() -> str:
    """``--help`` of ``stockpred``, each of its commands, and each flow's command line."""
    from flows import cli as flow_cli
    from stockpred.cli import build_parser

    parser = build_parser()
    out = _block("stockpred", parser)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        out += _block(f"stockpred {name}", sub)
    out += ["## Flows", ""]
    out += ["Each flow parses its options before Prefect is imported, so `--help` is instant.", ""]
    for name in sorted(n for n in dir(flow_cli) if n.endswith("_parser")):
        flow_parser = getattr(flow_cli, name)()
        out += _block(flow_parser.prog, flow_parser)
    return "\n".join(out)


def metrics_reference() -> str:
    """Per registered task: its models, its selection metric and its direction."""
    from stockpred.tasks import TASKS, metric_key

    out = [
        "| task (`target.kind`) | models (the LSTM, then its baselines) | relative score "
        "| selects and promotes by | better |",
        "|---|---|---|---|---|",
    ]
    for kind, task in TASKS.items():
        models = ", ".join(f"`{m}`" for m in task.models)
        better = "lower" if task.lower_is_better else "higher"
        out.append(
            f"| `{kind}` | {models} | `{task.relative_name}` (`{task.relative_metric}` / "
            f"`{task.reference}`'s) | `{task.selection_metric}` | {better} |"
        )
    example = TASKS["return"]
    out += [
        "",
        "Keys follow one rule, `stockpred.tasks.metric_key(model, metric, part)`: "
        f"`{metric_key('lstm', 'rmse')}` for the LSTM, "
        f"`{metric_key(example.baseline_names[0], 'rmse')}` for a baseline, "
        f"`{metric_key('lstm', example.relative_name, 'val')}` on the validation part.",
        "",
    ]
    return "\n".join(out)


GENERATORS = {"config": config_reference, "cli": cli_reference, "metrics": metrics_reference}
