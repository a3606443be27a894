"""Session fixtures: the real local services, started once when they are down."""

from __future__ import annotations

import pytest

from tonewatch import services
from tonewatch.config import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def running_services(settings: Settings) -> list[services.ServiceStatus]:
    """Start every service that is down. A service that cannot start fails the test run."""
    return services.up(settings)
