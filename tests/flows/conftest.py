from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.server import STARTUP_TIMEOUT_S


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test on the Prefect test server (directly or through a fixture) is slow: the server
    is a subprocess, and the flows it runs train (`make test-fast` leaves them out)."""
    for item in items:
        if "prefect_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary SQLite-backed Prefect server for the whole session."""
    # the start limit every flow has: the harness's server competes with the tests for 2 cores
    with prefect_test_harness(server_startup_timeout=STARTUP_TIMEOUT_S):
        yield


def completed_task_names() -> set[str]:
    """The names (without Prefect's run suffix) of every completed task run on the server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {
            t.name.rsplit("-", 1)[0]
            for t in client.read_task_runs()
            if t.state and t.state.is_completed()
        }
