"""The top-level package names are generic: make sure they are ours, not a dependency's."""

import importlib
import importlib.metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tonewatch", "streams", "inference", "storage", "retrain")


@pytest.mark.parametrize("name", PACKAGES)
def test_package_resolves_to_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_no_installed_distribution_ships_our_top_level_names() -> None:
    clashes = []
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"] == "tonewatch":
            continue
        top_level = (dist.read_text("top_level.txt") or "").split()
        files = {Path(str(f)).parts[0] for f in dist.files or []}
        clashes += [(dist.metadata["Name"], n) for n in PACKAGES if n in top_level or n in files]
    assert clashes == []
