"""What the report notebook shows, as HTML a reader reads: the run, the verdict, the baseline
table, captioned figures, the network's memory beside the market's, and the gates over a calm and
a turbulent test window.

Each function returns an HTML fragment (``IPython.display.HTML`` shows it in JupyterLab and the
exported report keeps it as it is): tables are styled, formulas are plain Unicode (no MathJax), and
figures are embedded as data URIs with a caption.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from stockpred import tracking
from stockpred.config import GateConfig
from stockpred.figures.common import new_figure
from stockpred.forecast_tests import diebold_mariano
from stockpred.gates import GateSnapshot, replay
from stockpred.models import find_forecaster
from stockpred.replay import GateAccumulator, replay_batch, window_batches
from stockpred.split import TEST
from stockpred.tasks import TASKS, ForecastTask
from stockpred.tasks.base import LSTM, Verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stockpred.config import PipelineConfig
    from stockpred.prepare import Prepared

SIGNIFICANCE = 0.05
TABLE_STYLE = (
    "border-collapse:collapse;font-size:0.92em;margin:0.4em 0 1em 0;"
    "font-variant-numeric:tabular-nums"
)
CELL_STYLE = "padding:0.25em 0.8em;border-bottom:1px solid #ddd;text-align:right"


@dataclass(frozen=True)
class Comparison:
    """The LSTM against one baseline on the task's primary test metric."""

    baseline: str
    lstm: float
    other: float
    t: float  # Diebold-Mariano t of the LSTM's loss minus the baseline's (negative: LSTM better)
    p: float

    @property
    def change_pct(self) -> float:
        """The LSTM's loss relative to the baseline's, in % (negative: the LSTM is better)."""
        return 100.0 * (self.lstm / self.other - 1.0)


def run_header_html(
    run_id: str,
    config: PipelineConfig,
    metrics: Mapping[str, float],
    tickers: Sequence[str] | None = None,
) -> str:
    """Who the report is about: the run, its task and data, the model and how training ended.

    ``tickers``: those the run scored (default: the config's, which may be a pattern such as
    ``*`` for a folder of files)."""
    record = tracking.load_run_record(run_id)
    task = task_of(config)
    model, train = config.model, config.train
    epochs = metrics.get("train/epochs")
    best = metrics.get("train/best_epoch")
    trained = (
        f"{int(epochs)} epoch(s), weights of epoch {int(best)} kept (best validation loss)"
        if epochs is not None and best is not None
        else "–"
    )
    rows = [
        ("run", f"{record.get('run_name')} ({run_id})"),
        ("task", f"{task.kind}: {task.target_description}"),
        (
            "data",
            f"{tickers_text(config.data.tickers if tickers is None else tickers)}, "
            f"{config.data.start} to {config.data.end}",
        ),
        (
            "model",
            f"{model.arch.upper()}, {model.num_layers} layer(s) x {model.hidden_size} units, input window "
            f"{model.window} trading days, init {model.init}",
        ),
        ("training", f"{trained}; at most {train.max_epochs} epochs"),
    ]
    body = "".join(
        f'<tr><th style="{CELL_STYLE};text-align:left">{html.escape(k)}</th>'
        f'<td style="{CELL_STYLE};text-align:left">{html.escape(str(v))}</td></tr>'
        for k, v in rows
    )
    return f'<table style="{TABLE_STYLE}">{body}</table>'


def tickers_text(tickers: Sequence[str], shown: int = 8) -> str:
    """A universe in one line: every ticker up to ``shown`` of them, else the first few and how
    many more (a header of 500 names says nothing)."""
    tickers = list(tickers)
    if len(tickers) <= shown:
        return ", ".join(tickers)
    return f"{len(tickers)} tickers ({', '.join(tickers[:shown])} and {len(tickers) - shown} more)"


def task_of(config: PipelineConfig) -> ForecastTask:
    """The task a run's config trained."""
    return TASKS[tracking.task_kind(config)]


def comparisons(
    metrics: Mapping[str, float],
    task: ForecastTask,
    predictions: pd.DataFrame | None = None,
    horizon: int = 1,
) -> list[Comparison]:
    """The LSTM against every baseline the run scored, on the task's primary test metric, with
    the Diebold-Mariano test: logged (``test/dm_vs_<name>/t``, ``/p``) where the task logs it,
    else computed from ``predictions`` on squared errors (losses averaged over tickers per date).
    """
    metric = task.primary_metric
    lstm = metrics.get(task.metric_key(LSTM, metric))
    if lstm is None:
        return []
    out = []
    for name in task.baseline_names:
        other = metrics.get(task.metric_key(name, metric))
        if other is None:
            continue
        t = metrics.get(f"test/dm_vs_{name}/t", float("nan"))
        p = metrics.get(f"test/dm_vs_{name}/p", float("nan"))
        if not np.isfinite(t) and predictions is not None and name in predictions:
            t, p = _dm_squared_error(predictions, name, horizon)
        out.append(Comparison(name, float(lstm), float(other), float(t), float(p)))
    return out


def _dm_squared_error(predictions: pd.DataFrame, name: str, horizon: int) -> tuple[float, float]:
    errors = pd.DataFrame(
        {
            "date": predictions["date"],
            LSTM: (predictions[LSTM] - predictions["actual"]) ** 2,
            name: (predictions[name] - predictions["actual"]) ** 2,
        }
    ).dropna()
    by_date = errors.groupby("date").mean()
    return diebold_mariano(by_date[LSTM].to_numpy(), by_date[name].to_numpy(), horizon)


def verdict_html(
    comparisons: Sequence[Comparison],
    task: ForecastTask,
    metrics: Mapping[str, float] | None = None,
) -> str:
    """The verdict: first the LSTM against the strongest baseline on the primary metric (the
    task's ``verdict``, from ``metrics`` when given), then how many baselines it beat, by how
    much against the reference, and with what uncertainty."""
    label = task.primary_label
    if not comparisons:
        return "<p><b>No verdict:</b> this run has no test scores (was it evaluated?).</p>"
    beaten = [c for c in comparisons if _better(c.lstm, c.other, task)]
    best = min(comparisons, key=lambda c: c.other if task.lower_is_better else -c.other)
    reference = next((c for c in comparisons if c.baseline == task.reference), best)
    significant = [c for c in beaten if c.p < SIGNIFICANCE]
    worse_significant = [
        c for c in comparisons if _better(c.other, c.lstm, task) and c.p < SIGNIFICANCE
    ]
    strongest = task.verdict(metrics) if metrics is not None else None
    if strongest is None:  # no logged metrics: the same verdict from the comparisons
        strongest = Verdict(
            task.primary_metric, label, best.baseline, best.lstm, best.other, best.t, best.p
        )
    lead = f"<b>{html.escape(strongest.sentence())}.</b>"
    if len(beaten) == len(comparisons):
        head = f"The LSTM beat all {len(comparisons)} baselines on test {label}."
    elif not beaten:
        head = f"The LSTM beat none of its {len(comparisons)} baselines on test {label}."
    else:
        head = (
            f"The LSTM beat {len(beaten)} of its {len(comparisons)} baselines on test {label} "
            f"({', '.join(c.baseline for c in beaten)})."
        )
    sentences = [lead, html.escape(head)]
    sentences.append(
        f"Against {_name(reference.baseline, task)} its {label} is "
        f"{_signed_pct(reference.change_pct)} ({reference.lstm:.4g} vs {reference.other:.4g})"
        + (
            ""
            if best.baseline == reference.baseline
            else f"; against the best baseline, {best.baseline}, {_signed_pct(best.change_pct)}"
        )
        + "."
    )
    dm = [c for c in comparisons if np.isfinite(c.p)]
    if dm:
        sentences.append(
            f"Diebold–Mariano tests (two-sided, 5%): better than {len(significant)} and worse "
            f"than {len(worse_significant)} of the {len(dm)} baselines beyond chance; against "
            f"{reference.baseline} t = {reference.t:+.2f}, {_p(reference.p)}"
            + (
                ""
                if best.baseline == reference.baseline
                else f"; against {best.baseline} t = {best.t:+.2f}, {_p(best.p)}"
            )
            + " (negative t: the LSTM's loss is lower)."
        )
    else:
        sentences.append("No Diebold–Mariano test could be computed (too few test dates).")
    return '<p class="verdict">' + " ".join(sentences) + "</p>"


def _better(score: float, other: float, task: ForecastTask) -> bool:
    """Whether ``score`` beats ``other`` on the task's primary metric (its direction)."""
    return score < other if task.lower_is_better else score > other


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _name(baseline: str, task: ForecastTask) -> str:
    return f"the reference {baseline}" if baseline == task.reference else baseline


def _signed_pct(change: float) -> str:
    word = "lower" if change < 0 else "higher"
    return f"{abs(change):.1f}% {word}"


def comparison_table_html(
    metrics: Mapping[str, float], task: ForecastTask, comparisons: Sequence[Comparison]
) -> str:
    """Every model of the run on the test period as a styled HTML table: the task's scores, the
    relative score and the Diebold-Mariano t and p against the LSTM; the LSTM's row bold."""
    rows = []
    dm = {c.baseline: c for c in comparisons}
    metric = task.primary_metric
    for model in task.models:
        if task.metric_key(model, metric) not in metrics:
            continue
        row: dict[str, object] = {"model": model}
        for score in task.table_scores:
            row[score] = metrics.get(task.metric_key(model, score), np.nan)
        row[task.relative_name] = metrics.get(task.metric_key(model, task.relative_name), np.nan)
        test = dm.get(model)
        row["DM t"] = test.t if test else np.nan
        row["DM p"] = test.p if test else np.nan
        rows.append(row)
    if not rows:
        return "<p>No test scores were logged for this run.</p>"
    table = pd.DataFrame(rows)
    return html_table(table, bold_first=True)


def html_table(table: pd.DataFrame, *, bold_first: bool = False, digits: int = 4) -> str:
    """A small table as styled HTML: numbers to ``digits`` significant digits, NaN as a dash."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "–" if not np.isfinite(value) else f"{value:.{digits}g}"
        return html.escape(str(value))

    head = "".join(
        f'<th style="{CELL_STYLE};border-bottom:2px solid #444">{html.escape(str(c))}</th>'
        for c in table.columns
    )
    body = []
    for i, row in enumerate(table.itertuples(index=False)):
        weight = "font-weight:bold;" if bold_first and i == 0 else ""
        cells = "".join(f'<td style="{weight}{CELL_STYLE}">{cell(v)}</td>' for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f'<table style="{TABLE_STYLE}"><tr>{head}</tr>{"".join(body)}</table>'


def figure_html(source: Figure | Path | str, caption: str, alt: str | None = None) -> str:
    """A figure (a matplotlib ``Figure`` or a PNG file) embedded as a data URI, with a caption
    (``caption`` may hold inline HTML such as ``<b>``)."""
    if isinstance(source, str | Path):
        data = Path(source).read_bytes()
    else:
        buffer = io.BytesIO()
        source.savefig(buffer, format="png", dpi=90)
        data = buffer.getvalue()
    encoded = base64.b64encode(data).decode("ascii")
    text = html.escape(alt or _strip_tags(caption), quote=True)
    return (
        '<figure style="margin:0.5em 0 1.5em 0">'
        f'<img src="data:image/png;base64,{encoded}" alt="{text}" style="max-width:100%">'
        f'<figcaption style="font-size:0.92em;color:#333;max-width:60em">{caption}'
        "</figcaption></figure>"
    )


def _strip_tags(text: str) -> str:
    out, inside = [], False
    for char in text:
        if char == "<":
            inside = True
        elif char == ">":
            inside = False
        elif not inside:
            out.append(char)
    return "".join(out)


def artifact_figure(run_id: str, artifact: str, caption: str) -> str:
    """A logged figure of the run with its caption, or a line saying the run did not log it."""
    if artifact not in tracking.list_artifact_paths(run_id, str(Path(artifact).parent)):
        return f"<p><i>This run logged no {html.escape(artifact)}.</i></p>"
    return figure_html(tracking.download_artifact(run_id, artifact), caption)


def evaluation_figures(run_id: str, kind: str) -> str:
    """The run's logged evaluation figures (``evaluation/*.png``), each with its caption."""
    logged = [p for p in tracking.list_artifact_paths(run_id, "evaluation") if p.endswith(".png")]
    captions = TASKS[kind].figure_captions
    ordered = [p for p in captions if p in logged] + [p for p in logged if p not in captions]
    return "".join(
        figure_html(
            tracking.download_artifact(run_id, path),
            captions.get(path, f"<b>{html.escape(Path(path).stem)}</b> (logged by the run)."),
        )
        for path in ordered
    )


def ticker_scores(predictions: pd.DataFrame, task: ForecastTask) -> pd.DataFrame:
    """Per ticker: test windows, the LSTM's primary loss, the reference baseline's and their
    ratio (below 1: the LSTM is better there), best ratio first. One group-by over the logged
    forecasts: a summary per ticker, whatever the universe."""
    reference = task.reference
    rows = []
    for ticker, part in predictions.groupby("ticker", sort=True):
        actual = part["actual"].to_numpy()
        lstm = task.ablation_loss(actual, part[LSTM].to_numpy())
        other = (
            task.ablation_loss(actual, part[reference].to_numpy()) if reference in part else np.nan
        )
        rows.append((str(ticker), len(part), lstm, other))
    table = pd.DataFrame(rows, columns=["ticker", "windows", LSTM, reference])
    table["ratio"] = table[LSTM] / table[reference]
    return table.sort_values(["ratio", "ticker"], ignore_index=True)


def tickers_html(predictions: pd.DataFrame | None, task: ForecastTask, k: int = 5) -> str:
    """How the LSTM fares per ticker against the reference baseline: the distribution of the
    loss ratio over every ticker in a sentence (and a histogram when there are many), then the
    ``k`` best and ``k`` worst tickers (every ticker when there are at most ``2k``)."""
    if predictions is None or not len(predictions) or "ticker" not in predictions:
        return "<p><i>This run logged no test forecasts per ticker.</i></p>"
    table = ticker_scores(predictions, task)
    label, reference = (
        task.ablation_loss_name.upper(),
        task.reference,
    )  # what ticker_scores computes
    ratios = table["ratio"].to_numpy(dtype=float)
    finite = ratios[np.isfinite(ratios)]
    if not len(finite):
        return f"<p><i>No ticker has both an LSTM and a {reference} {label}.</i></p>"
    q10, median, q90 = np.quantile(finite, [0.1, 0.5, 0.9])
    parts = [
        f"<p><b>The LSTM's {label} is below {html.escape(reference)}'s on "
        f"{int((finite < 1).sum())} of {len(finite)} tickers.</b> Its {label} relative to "
        f"{html.escape(reference)}'s, per ticker: median {median:.3f}, from {q10:.3f} (10th "
        f"percentile) to {q90:.3f} (90th); below 1 the LSTM is better.</p>"
    ]
    if len(table) > 2 * k:
        parts.append(figure_html(_ratio_histogram(finite, label, reference), _ratio_caption(k)))
        shown = pd.concat([table.head(k), table.tail(k)], ignore_index=True)
        shown.insert(0, "rank", [*range(1, k + 1), *range(len(table) - k + 1, len(table) + 1)])
    else:
        shown = table
    parts.append(html_table(shown))
    return "".join(parts)


def _ratio_caption(k: int) -> str:
    return (
        "<b>Per-ticker loss ratio, every ticker.</b> The LSTM's test loss over the reference "
        "baseline's on each ticker's own windows (dashed: 1, the two equal). The table lists the "
        f"{k} tickers where the LSTM fares best and the {k} where it fares worst."
    )


def _ratio_histogram(ratios: np.ndarray, label: str, reference: str) -> Figure:
    fig = new_figure(6.5, 3.2)
    ax = fig.subplots()
    ax.hist(ratios, bins=min(50, max(10, len(ratios) // 5)), color="C0", alpha=0.8)
    ax.axvline(1.0, color="k", ls="--", lw=0.9)
    ax.set_xlabel(f"test {label}: LSTM / {reference} (per ticker)")
    ax.set_ylabel("tickers")
    return fig


def network_memory(metrics: Mapping[str, float]) -> dict[int, float]:
    """Per layer, the median unit's memory timescale tau (days) of the weights training kept
    (``gates/kept/...``; runs from before it was logged: the last epoch's)."""
    prefix = "gates/kept/l" if "gates/kept/l0/timescale/median" in metrics else "gates/l"
    out = {}
    layer = 0
    while f"{prefix}{layer}/timescale/median" in metrics:
        out[layer] = float(metrics[f"{prefix}{layer}/timescale/median"])
        layer += 1
    return out


def kept_memory(metrics: Mapping[str, float], name: str) -> float | None:
    """``memory/kept/<name>`` (the weights training kept), else the last epoch's
    ``memory/<name>`` (runs from before the kept epoch's measures were logged)."""
    value = metrics.get(f"memory/kept/{name}", metrics.get(f"memory/{name}"))
    return None if value is None else float(value)


def memory_html(
    metrics: Mapping[str, float], kind: str, ablation: pd.DataFrame | None = None
) -> str:
    """ "The network remembers about X days; GARCH says volatility's half-life here is Y days",
    with HAR's weight on the 22-day term; for a return run, why there is no market figure."""
    taus = network_memory(metrics)
    if not taus:
        return "<p>This run logged no memory timescales (gate diagnostics were off).</p>"
    layers = "; ".join(f"layer {k}: {v:.1f} days" for k, v in taus.items())
    last = max(taus)
    parts = [
        f"<p><b>The network remembers about {taus[last]:.1f} trading days</b> (the median unit's "
        f"τ = −1/ln of its memory gate's mean in its last layer at the last epoch; {layers})."
    ]
    if ablation is not None and len(ablation) and ablation["units"].gt(0).any():
        used = ablation[ablation["units"] > 0]
        top = used.loc[used["delta_loss"].idxmax()]
        if top["delta_loss"] <= 0:
            parts.append(" Silencing no timescale band raised the test loss.")
        else:
            parts.append(
                f" The band whose silencing costs the most is τ {_band(top['low'], top['high'])} "
                f"({int(top['units'])} units, Δ test loss {top['delta_loss']:+.4g})."
            )
    parts.append("</p>")
    half_life = metrics.get("market/garch_half_life_days")
    note = TASKS[kind].market_memory_note
    if note is not None:
        parts.append(f"<p>{note}</p>")
    elif half_life is None:
        parts.append(
            "<p>GARCH's persistence was not logged for this run (trained before it was, or too "
            "few training days per ticker to fit GARCH).</p>"
        )
    else:
        persistence = metrics["market/garch_persistence"]
        parts.append(
            f"<p><b>GARCH says volatility's half-life here is {half_life:.1f} trading days</b>: "
            f"α + β = {persistence:.3f} (the median over "
            f"{int(metrics.get('market/garch_tickers', 1))} ticker(s)), so a shock to the "
            f"variance halves in ln 0.5 / ln(α + β) days and falls by a factor e in "
            f"{metrics['market/garch_timescale_days']:.1f} days, the figure to set beside the "
            "network's τ, which is an e-folding time too."
        )
        if "market/har_share_22d" in metrics:
            parts.append(
                f" HAR puts {100 * metrics['market/har_share_22d']:.0f}% of its weight on the "
                f"22-day mean (weights: 1-day {metrics['market/har_weight_1d']:.3f}, 5-day "
                f"{metrics['market/har_weight_5d']:.3f}, 22-day "
                f"{metrics['market/har_weight_22d']:.3f})."
            )
        parts.append("</p>")
    return "".join(parts)


def memory_by_use_html(metrics: Mapping[str, float], config: PipelineConfig) -> str:
    """How long the forecast's memory is by use (saliency decay, truncation), set beside the
    gates' median tau (the divergence said when they disagree by more than 2x), what memory can
    earn on the training data, and where the memory lives (inputs or cell)."""
    tau = kept_memory(metrics, "saliency_tau")
    k90 = kept_memory(metrics, "k90")
    if tau is None or k90 is None:
        return (
            "<p>This run did not measure memory by use (<code>gates.memory</code> off, or it "
            "was trained before the measure existed).</p>"
        )
    untrained = metrics.get("memory/untrained/saliency_tau", math.nan)
    k5 = kept_memory(metrics, "truncation_k5")
    parts = [
        f"<p><b>By use, the forecast looks back about {tau:.1f} trading days</b>: its "
        "sensitivity to an input (mean |∂ forecast / ∂ input|) decays by a factor e every "
        f"{tau:.1f} days of lag (untrained: {untrained:.1f}). "
    ]
    if k5 is not None:
        parts.append(
            f"Keeping only the window's last 5 days changes the validation loss by "
            f"{100 * (k5 - 1):+.1f}%; "
        )
    parts.append(
        f"from the last {int(k90)} days on, the loss stays within 1% of the full "
        f"{config.model.window}-day window's.</p>"
    )
    gate = network_memory(metrics)
    if gate:
        median = gate[max(gate)]
        if tau > 0 and abs(math.log(max(tau, 1e-9) / median)) > math.log(2):
            place = (
                "in a few slow units and the recurrent weights, not in the typical unit"
                if tau > median
                else "in fewer units, or less of each, than the spectrum of timescales suggests"
            )
            parts.append(
                f"<p><b>The gates tell a different story</b>: the median unit's forget-gate "
                f"τ is {median:.1f} days. The gate timescales say how the network <i>could</i> "
                f"store memory, the measures above how much it <i>uses</i>: here the memory sits "
                f"{place}.</p>"
            )
        else:
            parts.append(
                f"<p>The gates agree within a factor 2: the median unit's forget-gate τ is "
                f"{median:.1f} days.</p>"
            )
    best = metrics.get("memory/best_ewma_tau")
    if best is not None:
        excess = metrics.get("memory/ewma_excess_1_5d", math.nan)
        parts.append(
            f"<p>On the training data, the best exponential memory of this target is "
            f"{best:.1f} days; a 1.5-day memory costs {100 * excess:.1f}% more loss than it: "
            f"{'memory pays here' if excess > 0.02 else 'the task barely rewards memory'}.</p>"
        )
    selection = [*config.features.include, *(f"minus {n}" for n in config.features.exclude)]
    daily_only = list(config.features.include) == ["daily"] and not config.features.exclude
    parts.append(
        f"<p>Inputs: <code>{' '.join(selection)}</code>. "
        + (
            "Same-day quantities only, so any memory beyond a day is the network's own. "
            if daily_only
            else "Multi-day aggregates among the inputs carry memory for the network; a run with "
            "<code>--set features.include=daily</code> shows how much of it the cell builds "
            "when they are taken away. "
        )
        + "The measure was validated on planted GARCH memory (a 16-day memory recovered from "
        "either side: <code>make bench-memory</code>, docs/explanation/memory.md).</p>"
    )
    return "".join(parts)


def _band(low: float, high: float) -> str:
    if low <= 0:
        return f"below {high:g} days"
    return f"above {low:g} days" if not np.isfinite(high) else f"{low:g}–{high:g} days"


@dataclass(frozen=True)
class ShockWindows:
    """The calmest and the most turbulent test window of a run, their gates and price paths."""

    calm: GateSnapshot
    turbulent: GateSnapshot
    calm_path: np.ndarray
    turbulent_path: np.ndarray
    calm_label: str
    turbulent_label: str


def window_volatility(prepared: Prepared, ends: np.ndarray) -> np.ndarray:
    """(S,) the annualised volatility of the daily close-to-close returns inside each window
    ending at ``ends`` (what a reader sees in the window's price path); NaN where a price in the
    window is missing. From running sums: one pass over the rows, whatever the universe."""
    window = prepared.window
    ends = np.asarray(ends, dtype=np.int64)
    if window < 2 or len(ends) == 0:
        return np.full(len(ends), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(np.log(np.asarray(prepared.close, dtype=np.float64)), prepend=np.nan)
    bad = ~np.isfinite(returns)
    squares = np.cumsum(np.where(bad, 0.0, returns**2))
    missing = np.cumsum(bad)
    first = ends - window + 1  # the window's first row: its return reaches before the window
    total = squares[ends] - squares[first]
    gaps = missing[ends] - missing[first]
    return np.where(gaps == 0, np.sqrt(252 * np.maximum(total, 0.0) / (window - 1)), np.nan)


def shock_windows(
    model: torch.nn.Module, prepared: Prepared, epoch: int, replay_mb: float | None = None
) -> ShockWindows:
    """Replay ``model``'s gates on every test window in batches of ``replay_mb`` (default:
    ``gates.replay_mb``'s), keeping only the per-unit statistics; pick the calmest and the most
    turbulent window by the volatility of the returns inside it and replay those two again to
    draw them. The units table (and so the heatmaps' row order) is over all test windows, the
    same for both."""
    test = prepared.dataset(TEST)
    if len(test) == 0:
        raise ValueError("the test period holds no complete window")
    ends = test.ends.numpy()
    vol = window_volatility(prepared, ends)
    if not np.isfinite(vol).any():
        raise ValueError("no test window has finite close prices to measure its volatility")
    calm, turbulent = int(np.nanargmin(vol)), int(np.nanargmax(vol))
    forecaster = find_forecaster(model)
    budget = GateConfig().replay_mb if replay_mb is None else replay_mb
    size = replay_batch(
        budget,
        forecaster.num_layers,
        prepared.window,
        forecaster.hidden_size,
        prepared.features.shape[1],
    )
    stats = GateAccumulator()
    for x, _ in window_batches(prepared, TEST, size):
        stats.add(replay(forecaster, x))
    drawn, _ = test.__getitems__(torch.tensor([calm, turbulent]))
    acts = replay(forecaster, drawn)

    def label(i: int, mood: str) -> str:
        end = ends[i]
        return (
            f"the {mood} test window: {prepared.tickers[end]} to {str(prepared.dates[end])[:10]}, "
            f"{100 * vol[i]:.0f}% annualised volatility"
        )

    return ShockWindows(
        calm=stats.snapshot(epoch, acts, index=0),
        turbulent=stats.snapshot(epoch, acts, index=1),
        calm_path=prepared.price_path(int(ends[calm])),
        turbulent_path=prepared.price_path(int(ends[turbulent])),
        calm_label=label(calm, "calmest"),
        turbulent_label=label(turbulent, "most turbulent"),
    )
