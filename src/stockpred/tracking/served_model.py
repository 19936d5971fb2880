"""MLflow's own copy of a stockpred model, logged as code ("models from code"), not a pickle.

``log_model`` logs this file as the pyfunc's model, with the weights-only copy
(``state_dict.pt``, ``architecture.json``) as its artifacts. ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` then run this file, which rebuilds the forecaster exactly as
``stockpred predict`` does (``torch.load(weights_only=True)``, every file checked): no stored
pickle is ever unpickled. MLflow executes this file; nothing else imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from stockpred.tracking.readback import rebuild_model


class WeightsOnlyForecaster(PythonModel):
    """A pyfunc around a forecaster rebuilt from its weights and architecture."""

    def load_context(self, context: PythonModelContext) -> None:
        """Rebuild the forecaster from the logged artifacts (no pickle)."""
        artifacts = context.artifacts
        label = f"the pyfunc at {Path(artifacts['weights']).parent.parent}"
        self.model = rebuild_model(
            label, Path(artifacts["weights"]), Path(artifacts["architecture"])
        )

    # MLflow reads predict's type hints as a schema and validates input against it; no hint
    # describes a tensor (it warns on each), so model_input has none and this class attribute,
    # MLflow's own opt-out (what its ChatModel uses), skips the check. The signature comes from
    # the logged input example instead.
    _skip_type_hint_validation = True

    def predict(  # type: ignore[no-untyped-def]
        self, context: PythonModelContext, model_input, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Windows (B, T, F) of scaled features -> the scaled forecast (B,)."""
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.model(x).numpy()


set_model(WeightsOnlyForecaster())
