from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary SQLite-backed Prefect server for the whole session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield
