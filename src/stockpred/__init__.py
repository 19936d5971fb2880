"""stockpred: causal features, a Lightning LSTM with gate diagnostics, tracked in MLflow.

Importing the package is cheap on purpose (the CLI's ``--help`` must not pull in torch,
lightning, prefect or mlflow); import the submodules you need.
"""

__version__ = "0.1.0"
