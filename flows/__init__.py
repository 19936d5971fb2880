"""Prefect flows: orchestration only; every task is one call into ``stockpred``."""

from flows.server import lengthen_server_start

# every flow module imports this package before Prefect: one start limit for all of them
lengthen_server_start()
