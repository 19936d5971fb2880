"""Every run's report: ``render_report(run_id)`` executes ``notebooks/03-gate-diagnostics.ipynb``
for one run and converts it to HTML that reads like the results section of a paper (no code, no
script from the network); the training pipeline attaches that file to every run as ``report/``.
In JupyterLab the same notebook shows its code."""

from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import functools
import logging
import os
import resource
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from jinja2 import DictLoader
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from stockpred import tracking

REPORT_NOTEBOOK = "03-gate-diagnostics.ipynb"
REPORT_FILE = "gate-diagnostics.html"


def notebooks_dir() -> Path:
    """The checkout's ``notebooks/`` folder (the notebooks are not part of an installed wheel)."""
    folder = Path(__file__).resolve().parents[3] / "notebooks"
    if not (folder / REPORT_NOTEBOOK).is_file():
        raise FileNotFoundError(
            f"{folder / REPORT_NOTEBOOK} does not exist: the report needs a source checkout of "
            "stockpred (pip install -e .)"
        )
    return folder


def inject_parameters(nb: NotebookNode, parameters: Mapping[str, Any]) -> NotebookNode:
    """A copy of ``nb`` with ``parameters`` assigned right after its cell tagged ``parameters``.

    Papermill's convention: the new cell is tagged ``injected-parameters`` (replacing an earlier
    one); without a ``parameters`` cell it goes first.
    """
    bad = [name for name in parameters if not name.isidentifier()]
    if bad:
        raise ValueError(f"parameter names must be Python identifiers, got {bad}")
    nb = copy.deepcopy(nb)
    lines = ["# Injected parameters", *(f"{k} = {v!r}" for k, v in parameters.items())]
    cell = new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    cells.insert(tagged[0] + 1 if tagged else 0, cell)
    nb.cells = cells
    return nb


def limit_memory(gigabytes: float) -> None:
    """Bound this process's private writable memory to ``gigabytes`` (``RLIMIT_DATA``; children
    inherit it): an allocation past it fails (MemoryError) instead of the machine paging. Not
    ``RLIMIT_AS``: torch maps GBs of address space for its libraries and threads that never
    become memory, so an address-space bound fails a kernel that uses little."""
    limit = int(gigabytes * 2**30)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def execute_notebook(
    path: Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: int = 600,
    memory_gb: float | None = None,
) -> NotebookNode:
    """Run a notebook headless in its folder on this interpreter; raises at the first cell error.

    The kernel sees the same tracking store as this process (``MLFLOW_TRACKING_URI``);
    ``memory_gb`` bounds the kernel's memory (``limit_memory``), not this process's.
    """
    nb = nbformat.read(path, as_version=4)
    if parameters:
        nb = inject_parameters(nb, parameters)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    env.pop("MPLBACKEND", None)  # let the kernel draw inline, as in JupyterLab
    NotebookClient(
        nb,
        kernel_name="python3",  # the kernel of the running interpreter
        timeout=timeout,
        startup_timeout=120,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not its TCP notice on our stderr
        resources={"metadata": {"path": str(Path(path).parent)}},
    ).execute(env=env, **_kernel_limits(memory_gb))
    return nb


def _kernel_limits(memory_gb: float | None) -> dict[str, Any]:
    # jupyter_client hands extra keywords of start_kernel to the kernel's Popen
    if memory_gb is None:
        return {}
    libc = None  # loaded here: loading a library between fork and exec can deadlock
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return {"preexec_fn": functools.partial(_bounded_kernel, memory_gb, libc)}


def _bounded_kernel(memory_gb: float, libc: ctypes.CDLL | None) -> None:
    """In the kernel's process before it starts: the memory bound, and (Linux) SIGKILL when the
    process that started it dies: a kernel starved of memory can hang rather than exit, and must
    not outlive a renderer killed by a signal."""
    limit_memory(memory_gb)
    if libc is not None:
        with contextlib.suppress(AttributeError):  # not Linux: no prctl
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# cells the exported report leaves out: the parameters, papermill's injection, notes on using
# the notebook interactively
REPORT_HIDDEN_TAGS = frozenset({"parameters", "injected-parameters", "notebook-only"})
# the lab template without its scripts from a CDN (require.js, MathJax, Mermaid, the widget
# renderer): the report renders offline; its formulas are written in Unicode and HTML
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def report_cells(nb: NotebookNode) -> NotebookNode:
    """A copy of an executed notebook as the report shows it: without the cells tagged in
    ``REPORT_HIDDEN_TAGS`` and without code cells that showed nothing."""
    nb = copy.deepcopy(nb)
    nb.cells = [
        cell
        for cell in nb.cells
        if not REPORT_HIDDEN_TAGS & set(cell.metadata.get("tags", []))
        and not (cell.cell_type == "code" and not cell.get("outputs"))
    ]
    return nb


def notebook_html(nb: NotebookNode, title: str) -> str:
    """An executed notebook as one self-contained HTML page that reads as a document: no code
    (inputs and the parameter cells left out, ``report_cells``), no script loaded from the
    network, figures embedded as data URIs."""
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"stockpred_report.html.j2": _OFFLINE_TEMPLATE})],
        template_file="stockpred_report.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    # nbconvert's accessibility check warns about images without alt text on the traitlets
    # logger; matplotlib's PNG outputs carry none, and the warning is noise in every run's log.
    logger = logging.getLogger("traitlets")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        body, _ = exporter.from_notebook_node(
            report_cells(nb), resources={"metadata": {"name": title}}
        )
    finally:
        logger.setLevel(level)
    return body


def render_report(
    run_id: str,
    output_dir: Path | None = None,
    *,
    timeout: int = 600,
    memory_gb: float | None = None,
) -> Path:
    """Execute the gate-diagnostics notebook for ``run_id`` and write it as HTML; returns the file.

    A failing cell raises ``ReportError`` naming the cell's error; ``memory_gb`` bounds the
    kernel's memory.
    """
    notebook = notebooks_dir() / REPORT_NOTEBOOK
    try:
        nb = execute_notebook(notebook, {"run_id": run_id}, timeout=timeout, memory_gb=memory_gb)
    except CellExecutionError as exc:
        raise ReportError(f"{notebook.name} failed: {exc.ename}: {exc.evalue}") from exc
    name = tracking.load_run_record(run_id)["run_name"]
    folder = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="stockpred-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_FILE
    path.write_text(notebook_html(nb, f"Gate diagnostics · {name}"), encoding="utf-8")
    return path


class ReportError(RuntimeError):
    """The report notebook failed; the message names the error of the failing cell."""
