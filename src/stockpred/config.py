"""Frozen, validated configuration: one ``PipelineConfig`` drives a whole run.

It is the Prefect flow's parameter (so the Prefect UI renders it as a form) and is logged
whole to MLflow, flattened to ``section.field`` parameters.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stockpred.symbols import check_ticker
from stockpred.text import printable


class FrozenModel(BaseModel):
    """A frozen pydantic model that refuses unknown fields and non-finite floats (every section)."""

    # inf or NaN passes every bound a field sets (NaN compares false) and poisons a run late:
    # weight_decay=Infinity trained to a NaN loss; refuse them where the config is read
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# The embedded sample's universes (stockpred.data.sample); the first is the default.
SAMPLE_UNIVERSES: dict[str, tuple[str, ...]] = {
    "indices": ("^GSPC", "^IXIC"),
    "stocks": ("AAPL", "GOOG", "IBM", "MSFT", "FB"),
    # everything embedded, pooled: the stocks end in 2013, so pair it with --end 2013-03-01
    "all": ("^GSPC", "^IXIC", "AAPL", "GOOG", "IBM", "MSFT", "FB"),
}
ALL_TICKERS = "*"  # data.tickers ["*"] with source files: every ticker the files hold


class DataConfig(FrozenModel):
    """Which prices to load, from where.

    ``tickers`` left at the default (or null) are the ``universe``'s: ^GSPC ^IXIC for indices,
    the five stocks for stocks. Tickers equal to another universe's default count as left at
    the default, so changing only the universe (``--universe stocks``) changes them too.
    """

    tickers: tuple[str, ...] = SAMPLE_UNIVERSES["indices"]
    start: dt.date = dt.date(1999, 1, 1)
    end: dt.date | None = Field(
        dt.date(2018, 12, 31),
        description="last date; null: through the latest day available when the run starts "
        "(for scheduled retrains on live data)",
    )
    source: Literal["sample", "yfinance", "files"] = "sample"
    universe: Literal["indices", "stocks", "all"] = Field(
        "indices",
        description="the embedded sample's universe: indices (^GSPC, ^IXIC 1999-2018), stocks "
        "(AAPL GOOG IBM MSFT FB 2000-2013) or all (the seven together; the stocks end in "
        "2013); sets the default tickers for every source",
    )
    path: str | None = Field(
        None,
        description="source files: a long-format Parquet/CSV file (date, ticker, open, high, "
        "low, close, volume; only date, ticker, close required) or a folder of them or of "
        "per-ticker files named TICKER.csv / TICKER.parquet; tickers ['*']: all of them",
    )
    cache_dir: str | None = Field(
        None, description="price cache folder for yfinance; default data/cache in the project"
    )
    refresh: bool = Field(True, description="fetch missing days from Yahoo (off: cache only)")
    on_bad_rows: Literal["raise", "drop"] = "raise"
    max_gap_days: int = Field(10, ge=1, description="warn about gaps longer than this")

    @model_validator(mode="before")
    @classmethod
    def _universe_tickers(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        universe = values.get("universe", "indices")
        tickers = values.get("tickers")
        if isinstance(tickers, str):
            tickers = cls._split_tickers(tickers)
        defaults = {tuple(d) for d in SAMPLE_UNIVERSES.values()}
        as_tuple = tuple(str(t).upper() for t in tickers) if tickers is not None else None
        if universe in SAMPLE_UNIVERSES and (as_tuple is None or as_tuple in defaults):
            values = {**values, "tickers": SAMPLE_UNIVERSES[universe]}
        return values

    @field_validator("tickers", mode="before")
    @classmethod
    def _split_tickers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [t for t in value.replace(",", " ").split() if t]
        return value

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one ticker, e.g. ['^GSPC']")
        if value == (ALL_TICKERS,):
            return value
        bad = []
        for ticker in value:
            try:
                check_ticker(ticker)
            except ValueError:
                bad.append(ticker)
        if bad:
            raise ValueError(
                f"malformed ticker(s) {bad}: use Yahoo symbols of 1-20 letters, digits and . - ^ ="
                " (or ['*'] for every ticker of data.source files)"
            )
        upper = tuple(t.upper() for t in value)  # Yahoo symbols are case-insensitive
        if len(set(upper)) != len(upper):
            raise ValueError(f"duplicate tickers in {list(value)}")
        return upper

    @model_validator(mode="after")
    def _check_dates(self) -> DataConfig:
        if self.start >= self.last_date:
            raise ValueError(f"start ({self.start}) must be before end ({self.last_date})")
        return self

    @model_validator(mode="after")
    def _check_source(self) -> DataConfig:
        if self.source == "files" and not self.path:
            raise ValueError(
                "data.source 'files' reads data.path: set it to a Parquet/CSV file or a folder "
                "of them, e.g. --path prices.parquet or --set data.path=DIR"
            )
        if self.tickers == (ALL_TICKERS,) and self.source != "files":
            raise ValueError(
                f"tickers ['*'] (every ticker of the files) needs data.source 'files', not "
                f"{self.source!r}: name the tickers"
            )
        # With source sample: a ticker of another universe is refused here, as is anything
        # outside the stocks; other symbols under the default indices universe are reported by
        # load_prices, as before there were universes.
        members = SAMPLE_UNIVERSES[self.universe]
        others = {t for u, m in SAMPLE_UNIVERSES.items() if u != self.universe for t in m}
        outside = [
            t
            for t in self.tickers
            if t not in members and (self.universe != "indices" or t in others)
        ]
        if self.source == "sample" and outside:
            other = [u for u, m in SAMPLE_UNIVERSES.items() if set(outside) <= set(m)]
            hint = f"set data.universe={other[0]} for those; " if other else ""
            raise ValueError(
                f"the sample's {self.universe} universe has no {outside}; it has "
                f"{list(members)} ({hint}data.source yfinance or files for other symbols)"
            )
        return self

    @property
    def last_date(self) -> dt.date:
        """``end``, or today when ``end`` is null (the latest data available)."""
        return self.end or dt.date.today()


class FeatureConfig(FrozenModel):
    """Causal features and the prediction target."""

    return_lags: tuple[int, ...] = (1, 5, 20)
    volatility_window: int = Field(20, ge=2)
    rsi_window: int = Field(14, ge=2)
    ema_fast: int = Field(12, ge=2)
    ema_slow: int = Field(26, ge=3)
    volume_window: int = Field(20, ge=2)
    horizon: int = Field(1, ge=1, le=250, description="forecast horizon in trading days")
    variance: bool = Field(
        False,
        description="add the volatility task's features (log daily variance of every OHLC "
        "estimator, their 5/22-day means, 5-day downside semivariance); default: on when "
        "target.kind is volatility",
    )
    include: tuple[str, ...] = Field(
        ("all",),
        description="the network's inputs: feature names and named sets (all; daily: the "
        "same-day quantities only); baselines read every feature whatever is chosen",
    )
    exclude: tuple[str, ...] = Field(
        (), description="feature names or named sets removed from include"
    )

    @field_validator("return_lags")
    @classmethod
    def _check_lags(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(lag < 1 for lag in value):
            raise ValueError("must be a non-empty list of positive day counts, e.g. [1, 5, 20]")
        return tuple(sorted(set(value)))

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):  # --set features.include=daily,ret_5d
            value = [n for n in value.replace(",", " ").split() if n]
        return value

    @field_validator("include")
    @classmethod
    def _check_include(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one feature or set, e.g. ['all'] or ['daily']")
        return value

    @model_validator(mode="after")
    def _check_ema(self) -> FeatureConfig:
        if self.ema_fast >= self.ema_slow:
            raise ValueError(f"ema_fast ({self.ema_fast}) must be < ema_slow ({self.ema_slow})")
        return self


TargetKind = Literal["return", "volatility"]
TARGET_KINDS: tuple[str, ...] = ("return", "volatility")
# The one default task of every entry point (`make run`, `stockpred train`, load_config(), the
# flows, the deployments, the notebooks); `--target return` (target.kind) switches everywhere.
DEFAULT_TARGET: TargetKind = "volatility"


class TargetConfig(FrozenModel):
    """What is forecast: the forward realised variance (the default), or the forward log return."""

    kind: TargetKind = Field(
        DEFAULT_TARGET,
        description="volatility (the default): the mean daily variance over days t+1..t+horizon "
        "(learnt as log variance); return: the log return over features.horizon days",
    )
    estimator: Literal[
        "parkinson", "garman_klass", "rogers_satchell", "yang_zhang", "squared_return"
    ] = Field(
        "parkinson",
        description="volatility: the daily variance estimator from OHLC (parkinson needs no "
        "open, so it also serves data with a stale open such as ^GSPC before 2007)",
    )
    loss: Literal["qlike", "mse"] = Field(
        "qlike", description="volatility: QLIKE on log variance, or MSE on log variance"
    )


# The task names a config accepts (``stockpred.tasks.TASKS``' keys; a test checks they agree):
# the CLI's ``--target`` choices, without importing the tasks (and torch) for ``--help``.
TASK_KINDS: tuple[str, ...] = get_args(TargetConfig.model_fields["kind"].annotation)


class SplitConfig(FrozenModel):
    """Chronological train / validation / test split with an embargo between the parts."""

    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    embargo: int | None = Field(
        None, ge=0, description="dates dropped between parts; default window + horizon"
    )


# The registered models' names (``stockpred.models.MODELS``; config.py may not import models, a
# test checks the two agree).
ModelArch = Literal["lstm", "gru"]
MODEL_ARCHS: tuple[str, ...] = get_args(ModelArch)


class ModelConfig(FrozenModel):
    """The forecaster (``arch``) and the length of its input window."""

    window: int = Field(60, ge=2, le=1000, description="input window length in trading days")
    hidden_size: int = Field(64, ge=1, le=4096)
    num_layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    init: Literal["default", "chrono"] = Field(
        "default",
        description="gate-bias init: default (PyTorch's) or chrono (Tallec & Ollivier 2018: "
        "forget bias log U(1, chrono_max - 1), input bias its negative)",
    )
    chrono_max: int | None = Field(
        None, ge=2, le=100_000, description="chrono init's T_max in trading days; None: the window"
    )
    arch: ModelArch = Field(
        "lstm", description="the forecaster: lstm or gru (stockpred.models.MODELS)"
    )

    @model_validator(mode="after")
    def _chrono_is_an_lstm_init(self) -> ModelConfig:
        """Chrono sets the LSTM's forget and input biases: another arch cannot take it."""
        if self.init == "chrono" and self.arch != "lstm":
            raise ValueError(
                f"model.init=chrono sets an LSTM's forget-gate biases; model.arch={self.arch} "
                "trains with model.init=default"
            )
        return self


class TrainConfig(FrozenModel):
    """Optimisation and the Lightning Trainer."""

    max_epochs: int = Field(15, ge=1, le=10_000)
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="windows per step and device; auto: 256 on CPU, 1024 on CUDA"
    )
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    patience: int = Field(4, ge=1, description="early-stopping patience in epochs on val/loss")
    gradient_clip: float = Field(1.0, ge=0.0)
    # numpy (and so Lightning's seed_everything) takes a uint32; refused here, not after loading
    seed: int = Field(42, ge=0, le=2**32 - 1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="devices (CPU: processes) to train on; auto: every GPU, or 1"
    )
    strategy: Literal["auto", "ddp_spawn", "ddp_fork"] = Field(
        "auto",
        description="how several devices train: auto = ddp_spawn, or ddp_fork in a notebook",
    )
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    limit_train_batches: int | float = Field(
        1.0, description="training batches per epoch: a fraction in (0, 1] or a count >= 1"
    )
    progress_bar: bool = True
    loss_steps: Literal["last", "all"] = Field(
        "last",
        description="the training loss on each window's last step, or on every step after "
        "train.burn_in (each step's own target, inside its part); validation stays last-step",
    )
    burn_in: int = Field(0, ge=0, description="steps of each window left out of an all-steps loss")
    gate_bias_lr: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="a learning rate of its own for the gate biases (the forget gate's sets the "
        "memory timescale; Adam moves a bias ~lr per step); None: train.learning_rate",
    )
    num_threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
        "auto",
        description="torch CPU threads while training; auto: 1 on machines with <= 2 cores "
        "(measured faster there), else torch's default",
    )

    @field_validator("limit_train_batches", mode="before")
    @classmethod
    def _no_bool_or_inf_limit(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError("must be a fraction in (0, 1] or a whole number of batches >= 1")
        return value

    @field_validator("limit_train_batches")
    @classmethod
    def _check_limit(cls, value: int | float) -> int | float:
        # Lightning reads an int as a batch count and a float as a fraction of the batches; a
        # fraction above 1 or a count below 1 it refuses only after the data has loaded
        if isinstance(value, int) and value < 1:
            raise ValueError("must be a whole number of batches >= 1, or a fraction in (0, 1]")
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError(
                "must be a fraction in (0, 1] (e.g. 0.25) or a whole number of batches >= 1 "
                "(e.g. 50)"
            )
        return value

    @field_validator("batch_size", "devices", mode="before")
    @classmethod
    def _count_or_auto(cls, value: Any) -> Any:
        if value == "auto":
            return value
        text = str(value).strip()
        if isinstance(value, bool | float) or not text.isdigit() or int(text) < 1:
            raise ValueError("must be a whole number >= 1, or auto")
        return int(text)


class GateConfig(FrozenModel):
    """LSTM gate diagnostics, computed every epoch on a fixed batch of validation windows."""

    enabled: bool = True
    batch_size: int = Field(128, ge=1, le=100_000, description="diagnostic windows")
    artifact_epochs: tuple[int, ...] = Field(
        (0,), description="epochs whose tables and figures are logged (the last one always is)"
    )
    memory: bool = Field(
        True,
        description="memory measured by use on the diagnostic windows, untrained and every "
        "epoch: the truncation curve (memory/k90) and saliency by lag (memory/saliency_tau)",
    )
    memory_windows: int = Field(
        32,
        ge=1,
        le=100_000,
        description="diagnostic windows the memory measures use (evenly spaced validation "
        "windows): the truncation curve runs window x this many windows each epoch, so it "
        "sets their cost (32: ~1.1x an epoch with the default model on the sample)",
    )
    ablation_bands: tuple[float, ...] = Field(
        (2, 10, 50),
        description="memory-timescale band edges in trading days for the after-training ablation "
        "(units with tau < 2, 2-10, 10-50, > 50 by default); empty: no ablation",
    )
    replay_mb: float = Field(
        64.0,
        gt=0.0,
        le=1_000_000.0,
        description="memory of one batch of every replay after training (the ablation, the "
        "report's calm and turbulent windows), in MB: the windows are replayed that many at a "
        "time, so the replay's memory does not grow with the universe",
    )

    @field_validator("ablation_bands")
    @classmethod
    def _check_bands(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(edge <= 0 for edge in value) or any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("must be increasing band edges > 0 (trading days)")
        return value

    @field_validator("artifact_epochs")
    @classmethod
    def _check_epochs(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(epoch < 0 for epoch in value):
            raise ValueError("must be epoch numbers >= 0 (the first epoch is 0)")
        return tuple(sorted(set(value)))


ReportMode = Literal["background", "inline", "off"]
REPORT_MODES: tuple[str, ...] = ("background", "inline", "off")


def _also_boolean(schema: dict[str, Any]) -> None:
    """JSON schema of a mode that also accepts true/false: Prefect validates a deployment run's
    parameters against the schema, so ``"report": false`` must be allowed there too."""
    choice = {key: schema.pop(key) for key in ("enum", "type") if key in schema}
    schema["anyOf"] = [choice, {"type": "boolean"}]


class TrackingConfig(FrozenModel):
    """Where and under which names the run is tracked in MLflow."""

    experiment: str = Field("stockpred", min_length=1, max_length=200)
    run_name: str | None = Field(None, max_length=250)  # MLflow's runs table holds 250
    log_model: bool = True
    report: ReportMode = Field(
        "background",
        description="the gate-diagnostics report (the notebook executed, attached as HTML): "
        "background (rendered by a separate process after the run has finished; the run's "
        "report.status tag says pending, attached or failed), inline (inside the run, before "
        "it returns), off; true/false (older configs) mean inline/off",
        json_schema_extra=_also_boolean,
    )
    report_memory_gb: float = Field(
        4.0,
        gt=0.0,
        le=65536.0,
        description="the background report's memory bound in GB: the private memory "
        "(RLIMIT_DATA) of its renderer process and of the notebook kernel it starts (each); a "
        "render that needs "
        "more ends with report.status = failed: out of memory",
    )
    report_timeout_s: int = Field(
        1800,
        ge=1,
        description="the background report's time bound in seconds, from the start of its "
        "render (not its wait in the queue); a render that takes longer ends with "
        "report.status = failed: over the time bound",
    )

    @field_validator("experiment", "run_name")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # a newline or colour code in a name printed later could forge a line of the terminal
        if value is not None and printable(value) != value:
            raise ValueError("must not hold control characters (newlines, escape codes, tabs)")
        return value

    @field_validator("report", mode="before")
    @classmethod
    def _report_mode(cls, value: Any) -> Any:
        if isinstance(value, bool):  # older configs: true rendered the report inside the run
            return "inline" if value else "off"
        if isinstance(value, str) and value.strip().lower() in REPORT_MODES:
            return value.strip().lower()
        raise ValueError(
            f"must be one of {', '.join(REPORT_MODES)} (or true = inline, false = off)"
        )


REGISTERED_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class EvaluationConfig(FrozenModel):
    """How the held-out period is scored, and how models are registered."""

    cost_bps: float = Field(5.0, ge=0.0, le=1000.0, description="trading cost per unit turnover")
    ar_order: int = Field(5, ge=1, le=250, description="lags of the AR(p) baseline")
    register_model: bool = Field(
        False,
        description="register the model as a new version and apply the champion rule (only "
        "when asked: `stockpred train --register`, the weekly retrain)",
    )
    folds: int = Field(3, ge=1, le=50, description="walk-forward folds (stockpred backtest)")
    scheme: Literal["expanding", "rolling"] = "expanding"
    fold_test_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="dates per test fold")
    registered_name: str = Field(
        "stockpred-lstm",
        min_length=1,
        max_length=200,
        description="the registered model's name: letters, digits, '-', '_', '.'",
    )

    @field_validator("registered_name")
    @classmethod
    def _registrable(cls, name: str) -> str:
        # MLflow refuses '/' and ':' only when registering, after the training: refuse them here
        if not REGISTERED_NAME.fullmatch(name):
            raise ValueError(
                "a registered model name is letters, digits, '-', '_' and '.', without '/' or "
                "':' (MLflow refuses them) and not starting with '.' or '-' ('@' reads as an "
                "alias in models:/NAME@ALIAS), e.g. 'stockpred-lstm'"
            )
        return name

    mcs_replications: int = Field(
        1000,
        ge=100,
        le=100_000,
        description="block-bootstrap replications of the model confidence set",
    )
    mcs_block: int = Field(
        10,
        ge=1,
        le=250,
        description="block length in days of the model confidence set's bootstrap (losses of "
        "a persistent variance are autocorrelated for days)",
    )


class PipelineConfig(FrozenModel):
    """Everything one training run needs; validated as a whole."""

    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    target: TargetConfig = TargetConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    gates: GateConfig = GateConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="before")
    @classmethod
    def _variance_features(cls, values: Any) -> Any:
        """features.variance left unset follows target.kind (on for volatility)."""
        if not isinstance(values, dict):
            return values
        target = values.get("target") or {}
        kind = target.get("kind", DEFAULT_TARGET) if isinstance(target, dict) else target.kind
        features = values.get("features")
        if features is None:
            features = {}
        if isinstance(features, dict) and "variance" not in features:
            values = {**values, "features": {**features, "variance": kind == "volatility"}}
        return values

    @model_validator(mode="after")
    def _check_burn_in(self) -> PipelineConfig:
        if self.train.loss_steps == "all" and self.train.burn_in >= self.model.window:
            raise ValueError(
                f"train.burn_in ({self.train.burn_in}) must be < model.window "
                f"({self.model.window}): the all-steps loss needs steps after the burn-in"
            )
        return self

    @model_validator(mode="after")
    def _check_embargo(self) -> PipelineConfig:
        if self.evaluation.ar_order > self.model.window:
            raise ValueError(
                f"evaluation.ar_order ({self.evaluation.ar_order}) must be <= model.window "
                f"({self.model.window}): the AR baseline reads its lags from the window"
            )
        need = self.model.window + self.features.horizon
        if self.split.embargo is not None and self.split.embargo < need:
            raise ValueError(
                f"split.embargo ({self.split.embargo}) must be >= model.window + "
                f"features.horizon = {need}, or left unset"
            )
        return self

    @model_validator(mode="after")
    def _check_param_lengths(self) -> PipelineConfig:
        # every value is logged as an MLflow parameter, which refuses one longer than 6000
        # characters only once the run exists; this also bounds a huge string in the config
        for key, value in self.flat().items():
            if value is not None and len(str(value)) > MAX_PARAM_CHARS:
                raise ValueError(
                    f"{key} is {len(str(value)):,} characters long; MLflow keeps at most "
                    f"{MAX_PARAM_CHARS:,} per setting: shorten it (many tickers: put them in "
                    f"data.source files and use tickers ['*'])"
                )
        return self

    @model_validator(mode="after")
    def _check_batch_limit(self) -> PipelineConfig:
        # Lightning refuses a fraction that rounds to zero batches only after the data has
        # loaded; an upper bound on the batches (every weekday a date) refuses it here
        limit = self.train.limit_train_batches
        if not isinstance(limit, float) or self.data.tickers == (ALL_TICKERS,):
            return self
        batches = self.most_train_batches()
        if limit * batches < 1:
            raise ValueError(
                f"train.limit_train_batches={limit} of at most {batches} training batches is "
                f"less than one batch: use at least {1 / batches:.2g}, or a whole number of "
                "batches such as 1"
            )
        return self

    @model_validator(mode="after")
    def _check_memory(self) -> PipelineConfig:
        # a model or batch too large is otherwise an out-of-memory kill after the data loaded
        need, have = self.memory_estimate(), physical_memory()
        if have and need > have:
            raise ValueError(
                f"model.hidden_size={self.model.hidden_size}, model.num_layers="
                f"{self.model.num_layers}, model.window={self.model.window}, train.batch_size="
                f"{self.train.batch_size} and gates.batch_size={self.gates.batch_size} need "
                f"about {need / 2**30:,.0f} GiB of memory, more than this machine's "
                f"{have / 2**30:,.0f} GiB: make them smaller"
            )
        return self

    def most_train_batches(self) -> int:
        """An upper bound on the training batches per epoch (every weekday a date, 1 device)."""
        days = (self.data.last_date - self.data.start).days + 1
        dates = days * 5 // 7 + 2
        train = dates * (1 - self.split.val_fraction - self.split.test_fraction)
        batch = self.train.batch_size if isinstance(self.train.batch_size, int) else 256
        return max(1, math.ceil(train * len(self.data.tickers) / batch))

    def memory_estimate(self) -> int:
        """Rough bytes training needs: weights, gradients and Adam's two moments, plus the
        activations of a training batch and of the gate-diagnostics batch (float32)."""
        hidden, layers, window = self.model.hidden_size, self.model.num_layers, self.model.window
        inputs = 64  # features: a generous upper bound on the columns the features make
        params = 4 * hidden * (inputs + hidden + 2) + (layers - 1) * 4 * hidden * (2 * hidden + 2)
        batch = self.train.batch_size if isinstance(self.train.batch_size, int) else 256
        # per window, step and layer: four gates, the cell and hidden state kept for backward
        per_window = window * layers * hidden * 8
        gate_windows = self.gates.batch_size if self.gates.enabled else 0
        return 4 * (4 * params + (batch + gate_windows) * per_window)

    @property
    def embargo(self) -> int:
        """The embargo in dates: the configured one, or window + horizon."""
        if self.split.embargo is not None:
            return self.split.embargo
        return self.model.window + self.features.horizon

    def flat(self) -> dict[str, Any]:
        """The config as ``{"section.field": value}``, ready for ``mlflow.log_params``."""
        out: dict[str, Any] = {}
        for section, values in self.model_dump(mode="json").items():
            for key, value in values.items():
                out[f"{section}.{key}"] = (
                    ",".join(map(str, value)) if isinstance(value, list) else value
                )
        out["split.embargo_effective"] = self.embargo
        return out

    def with_overrides(self, overrides: dict[str, Any]) -> PipelineConfig:
        """A copy with ``{"section.field": value}`` overrides applied and re-validated."""
        nested = self.model_dump()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in nested or not key:
                raise ConfigError(
                    f"unknown setting {dotted!r}: use section.field with section one of "
                    f"{sorted(nested)}"
                )
            nested[section][key] = value
        if "target.kind" in overrides and "features.variance" not in overrides:
            nested["features"].pop("variance", None)  # follow the new kind
        return load_config(nested)


def override_fields(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every field ``given`` sets replaced, section by section (a nested merge: a
    partial config overrides only the fields it names, the rest keep ``base``'s values)."""
    merged = _merge(base, given)
    target, features = given.get("target"), given.get("features")
    kind_given = isinstance(target, dict) and "kind" in target
    variance_given = isinstance(features, dict) and "variance" in features
    if kind_given and not variance_given and isinstance(merged.get("features"), dict):
        # features.variance follows the new kind, as in with_overrides
        merged["features"] = {k: v for k, v in merged["features"].items() if k != "variance"}
    return merged


def _merge(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in given.items():
        old = merged.get(key)
        merged[key] = (
            _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return merged


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and what is allowed."""


MAX_PARAM_CHARS = 6000  # MLflow's longest parameter value
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; a bound keeps /dev/zero or a huge file out
MAX_CONFIG_DEPTH = 32  # a config nests three levels; deeper input is a mistake or an attack


def physical_memory() -> int:
    """This machine's memory in bytes (0 when the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def read_json_file(path: str | Path, what: str = "config file") -> Any:
    """The JSON in a regular file of at most ``MAX_CONFIG_BYTES``; anything else is a
    ``ConfigError`` (a FIFO or device is refused without waiting on it)."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of hanging
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist") from exc
    except OSError as exc:  # unreadable: permissions, a broken disk
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror or exc})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{what} {path} is a folder: give a JSON file in it")
        raise ConfigError(
            f"{what} {path} is not a regular file (a device, FIFO or socket): give a JSON file"
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{what} {path} cannot be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{what} {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: a config is a few KB "
            "of JSON; check that the path names the config"
        )
    try:
        return parse_json(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text: {exc.reason}") from None
    except ConfigError as exc:
        raise ConfigError(f"{what} {path} {exc}") from None


def parse_json(text: str) -> Any:
    """JSON text parsed, nested at most ``MAX_CONFIG_DEPTH`` deep; else a ``ConfigError``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"is nested deeper than {MAX_CONFIG_DEPTH} levels") from None
    check_depth(value)
    return value


def check_depth(value: Any, what: str = "is") -> None:
    """Refuse lists and objects nested deeper than ``MAX_CONFIG_DEPTH`` (iteratively, so a
    100,000-deep value is one line, not a RecursionError)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list | tuple):
            if depth > MAX_CONFIG_DEPTH:
                raise ConfigError(f"{what} nested deeper than {MAX_CONFIG_DEPTH} levels")
            stack.extend((child, depth + 1) for child in children)


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: ``field.path: message (got value)``."""
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        msg = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {_short_repr(got)})"
        if item["type"] == "extra_forbidden":
            msg = f"unknown setting; allowed: {', '.join(_fields_at(item['loc'][:-1]))}"
        lines.append(f"{where}: {msg}{shown}")
    return "; ".join(lines)


def _short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: a 50 MB value must not fill the terminal."""
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit + 2 else f"{text[:limit]}... ({len(text):,} characters)"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = PipelineConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields)


def load_config(source: dict[str, Any] | str | Path | None = None) -> PipelineConfig:
    """Build a validated ``PipelineConfig`` from a dict or a JSON file; errors are ``ConfigError``."""
    if source is None:
        return PipelineConfig()
    if isinstance(source, str | Path):
        source = read_json_file(source)
    else:
        check_depth(source, "the config is")
    try:
        return PipelineConfig.model_validate(source)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
