import pytest

from tonewatch import services


@pytest.fixture(autouse=True)
def _services(running_services: list[services.ServiceStatus]) -> None:
    """Every integration test talks to the real services."""
