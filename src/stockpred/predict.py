"""Next-day forecasts from the registered champion: the latest data, the champion's own scaling."""

from __future__ import annotations

import datetime as dt
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stockpred import experiment, tracking
from stockpred.config import PipelineConfig
from stockpred.data import DataError
from stockpred.features import make_features
from stockpred.paths import project_root
from stockpred.prepare import unscale
from stockpred.tasks import task_for
from stockpred.tracking import NoChampionError

__all__ = [
    "Champion",
    "InSampleWarning",
    "NoChampionError",
    "NonFiniteForecastError",
    "forecast_columns",
    "load_champion",
    "predict_next",
    "predict_next_warning_line",
    "save_predictions",
    "target_date",
]


class NonFiniteForecastError(ValueError):
    """The champion forecast NaN or inf: an error, never a result."""


class InSampleWarning(UserWarning):
    """The as-of date lies inside the period the champion was fit and selected on."""


HISTORY_DAYS = 3  # calendar days of history loaded per trading day of window + feature warm-up


@dataclass(frozen=True)
class Champion:
    """The champion model version and what it needs to predict."""

    name: str
    version: str
    run_id: str
    model_uri: str
    config: PipelineConfig
    preprocessing: dict
    fit_through: dt.date | None = None  # the last validation day: weights and epoch chosen on it


def load_champion(name: str) -> Champion:
    """The version of ``name`` aliased ``champion``, with its run's config and scaling."""
    tracking.check_server()
    version, run_id = tracking.champion_version(name)
    # a deleted run, or its files gone, is one line naming the version (DamagedModelError)
    config, preprocessing, run = tracking.load_version_run(f"{name} v{version}", run_id)
    val_end = run.data.params.get("split.val_end")
    return Champion(
        name=name,
        version=version,
        run_id=run_id,
        model_uri=f"models:/{name}@{tracking.CHAMPION}",
        config=config,
        preprocessing=preprocessing,
        fit_through=dt.date.fromisoformat(val_end) if val_end else None,
    )


# the columns of a forecast frame around the task's own (``ForecastTask.forecast_columns``)
KEY_COLUMNS = ("ticker", "as_of", "target_date", "horizon_days")
MODEL_COLUMNS = ("model", "model_version", "run_id")


def forecast_columns(predictions: pd.DataFrame) -> list[str]:
    """The task's forecast columns of ``predictions`` (e.g. direction and log return, or
    variance and annualised volatility)."""
    return [c for c in predictions.columns if c not in (*KEY_COLUMNS, *MODEL_COLUMNS)]


def target_date(last: dt.date, horizon: int) -> dt.date:
    """The trading day a forecast made after the close of ``last`` is for: ``horizon`` business
    days later (weekends skipped; exchange holidays are not known here)."""
    return (pd.Timestamp(last) + pd.offsets.BDay(horizon)).date()


def predict_next(
    name: str = "stockpred-lstm", as_of: dt.date | None = None, max_stale_days: int = 5
) -> pd.DataFrame:
    """The champion's forecast of the next ``horizon`` days per ticker, as of ``as_of``.

    Loads the champion's tickers up to ``as_of`` (default today) from its source, rebuilds the
    features, scales them with the champion's training statistics and feeds each ticker's last
    window. Raises ``DataError`` if a ticker's last row is more than ``max_stale_days`` calendar
    days before ``as_of``; warns (``InSampleWarning``) when the champion was fit on data after
    ``as_of`` (its forecasts there are in-sample). ``target_date``: the day each is for.
    """
    champion = load_champion(name)
    config, prep = champion.config, champion.preprocessing
    task = task_for(config)
    as_of = as_of or dt.date.today()
    if champion.fit_through and as_of < champion.fit_through:
        warnings.warn(
            f"{name} v{champion.version} was trained and selected on data through "
            f"{champion.fit_through}, after the as-of date {as_of}: these forecasts are "
            "in-sample, not what it would have said then",
            InSampleWarning,
            stacklevel=2,
        )
    # the model first: a damaged or non-finite one is refused before any data is read
    model = tracking.load_model(champion.model_uri)
    window = config.model.window
    start = as_of - dt.timedelta(days=HISTORY_DAYS * (window + 60))
    prices = experiment.load_prices(config.data, start=start, end=as_of)
    features = make_features(prices, config.features)[prep["feature_names"]]
    scaled = (features - np.asarray(prep["feature_mean"])) / np.asarray(prep["feature_scale"])
    rows = []
    for ticker, part in scaled.groupby(level="ticker", sort=False):
        last = part.index.get_level_values("date").max().date()
        if (as_of - last).days > max_stale_days:
            raise DataError(
                f"{ticker}: the latest row is {last}, {(as_of - last).days} days before {as_of} "
                f"(limit {max_stale_days}); refresh the data (`stockpred fetch`) or forecast as "
                f"of that day: --as-of {last}"
            )
        values = np.array(part.to_numpy(dtype=np.float32)[-window:])  # writable copy for torch
        if len(values) < window or not np.isfinite(values).all():
            raise DataError(f"{ticker}: fewer than {window} complete feature rows before {as_of}")
        with torch.no_grad():
            scaled_pred = model(torch.from_numpy(values)[None]).item()  # (1, W, F) -> (1,)
        transform = prep.get("target_transform", "identity")
        predicted = unscale(
            np.array([scaled_pred]), prep["target_mean"], prep["target_scale"], transform
        )
        if not np.isfinite(predicted).all():
            raise NonFiniteForecastError(
                f"{name} v{champion.version} forecast {predicted[0]} for {ticker} as of {last}: "
                "not a number, so no forecast is saved; retrain the model (`stockpred train "
                "--register`) or point the champion alias at another version"
            )
        forecast = {k: v[0] for k, v in task.forecast_columns(predicted).items()}
        rows.append(
            {
                "ticker": ticker,
                "as_of": last.isoformat(),
                "target_date": target_date(last, config.features.horizon).isoformat(),
                "horizon_days": config.features.horizon,
                **forecast,
                "model": champion.name,
                "model_version": champion.version,
                "run_id": champion.run_id,
            }
        )
    return pd.DataFrame(rows)


def predict_next_warning_line(
    name: str = "stockpred-lstm", as_of: dt.date | None = None, max_stale_days: int = 5
) -> pd.DataFrame:
    """``predict_next``, its ``InSampleWarning`` printed as one ``stockpred: warning:`` line on
    stderr (Python's default shows two, with a file name and a source line)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InSampleWarning)
        frame = predict_next(name, as_of, max_stale_days)
    for warning in caught:
        if issubclass(warning.category, InSampleWarning):
            print(f"stockpred: warning: {warning.message}", file=sys.stderr, flush=True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return frame


def save_predictions(predictions: pd.DataFrame, folder: Path | None = None) -> Path:
    """Write ``predictions/<as_of>_v<version>.parquet`` (atomically) and return its path."""
    folder = folder or project_root() / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    as_of = predictions["as_of"].max()
    path = folder / f"{as_of}_v{predictions['model_version'].iloc[0]}.parquet"
    temp = path.with_suffix(".tmp")
    predictions.to_parquet(temp, index=False)
    temp.replace(path)
    return path


# How each forecast column reads: its label and format (forecasts in a forecaster's units)
COLUMN_FORMATS: dict[str, tuple[str, str]] = {
    "predicted_log_return": ("log return", "{:+.4f}"),
    "direction": ("direction", "{}"),
    "predicted_variance": ("daily variance", "{:.3e}"),
    "annual_vol_pct": ("annualised vol", "{:.1f}%"),
}


def _formatted(column: str, value: Any) -> str:
    _, fmt = COLUMN_FORMATS.get(column, (column, "{:.4g}" if isinstance(value, float) else "{}"))
    return fmt.format(value)


def forecast_line(row: Mapping[str, Any]) -> str:
    """One forecast as a log line, each value labelled in its units, e.g. ``^GSPC    for
    2019-01-02: daily variance 8.584e-05, annualised vol 14.7% (as of 2018-12-31, stockpred-lstm
    v1)``."""
    shown = [c for c in row if c not in (*KEY_COLUMNS, *MODEL_COLUMNS)]
    values = ", ".join(
        f"{COLUMN_FORMATS.get(c, (c, ''))[0]} {_formatted(c, row[c])}" for c in shown
    )
    return (
        f"{row['ticker']:<8} for {row['target_date']}: {values} "
        f"(as of {row['as_of']}, {row['model']} v{row['model_version']})"
    )


def forecast_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The forecasts as printed: ticker, dates, then each forecast column formatted in its units
    under its label (``daily variance``, ``annualised vol``), then the model version."""
    shown = forecast_columns(predictions)
    table = predictions[["ticker", "as_of", "target_date"]].copy()
    for column in shown:
        label = COLUMN_FORMATS.get(column, (column, ""))[0]
        table[label] = [_formatted(column, v) for v in predictions[column]]
    table["model_version"] = predictions["model_version"]
    return table
