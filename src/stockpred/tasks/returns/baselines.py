"""The return task's baselines, each fitted on the training windows only: zero (the random
walk), the training mean, ridge on the forecast date's features and AR(p) on the last returns."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge

from stockpred.tasks.base import Part

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
ONE_DAY_RETURN = "ret_1d"  # the feature the AR baseline reads its lags from


class Zero:
    """Predict no change: the random walk's forecast of a log return."""

    name = "zero"

    def fit(self, train: Part, val: Part) -> Zero:
        return self

    def predict(self, part: Part) -> np.ndarray:
        return np.zeros(len(part))

    def params(self) -> dict[str, float]:
        return {}


class Mean:
    """Predict the training period's mean return."""

    name = "mean"

    def fit(self, train: Part, val: Part) -> Mean:
        self.mean_ = float(train.prepared.target_mean)
        return self

    def predict(self, part: Part) -> np.ndarray:
        return np.full(len(part), self.mean_)

    def params(self) -> dict[str, float]:
        return {}


class RidgeOnFeatures:
    """Ridge regression on the forecast date's scaled features; alpha chosen on validation."""

    name = "ridge"

    def fit(self, train: Part, val: Part) -> RidgeOnFeatures:
        best: tuple[float, Ridge] | None = None
        for alpha in RIDGE_ALPHAS:
            ridge = Ridge(alpha=alpha).fit(train.last_row, train.target)
            mse = float(np.mean((ridge.predict(val.last_row) - val.target) ** 2))
            if best is None or mse < best[0]:
                best = (mse, ridge)
        assert best is not None
        self.ridge_ = best[1]
        return self

    def predict(self, part: Part) -> np.ndarray:
        return part.prepared.unscale(self.ridge_.predict(part.last_row))

    def params(self) -> dict[str, float]:
        return {"baseline.ridge_alpha": float(self.ridge_.alpha)}


class AutoRegression:
    """AR(p) by least squares: the target on the window's last p one-day returns."""

    name = "ar"

    def __init__(self, order: int) -> None:
        self.order = order

    def fit(self, train: Part, val: Part) -> AutoRegression:
        self.ar_ = LinearRegression().fit(train.lags(ONE_DAY_RETURN, self.order), train.target)
        return self

    def predict(self, part: Part) -> np.ndarray:
        return part.prepared.unscale(self.ar_.predict(part.lags(ONE_DAY_RETURN, self.order)))

    def params(self) -> dict[str, float]:
        return {"baseline.ar_order": self.order}
