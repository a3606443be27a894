import re
from pathlib import Path

import pytest

from tonewatch.cli import config_markdown
from tonewatch.config import Settings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"
CONFIGURATION = README.parent / "docs" / "configuration.md"


def test_configuration_table_matches_the_settings() -> None:
    pattern = r"<!-- config:start -->\n(.*?)\n<!-- config:end -->"
    block = re.search(pattern, CONFIGURATION.read_text(), re.S)
    assert block is not None, "docs/configuration.md lacks the configuration block"
    assert block.group(1) == config_markdown(), "run: tonewatch config --markdown"
    for name in Settings.model_fields:
        assert f"`TONEWATCH_{name.upper()}`" in block.group(1)


def test_quickstart_is_two_commands_and_ci_runs_the_test_one() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("```bash", 1)[1]
    commands = [line.split("#")[0].strip() for line in quickstart.split("```")[0].splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "exec make test" in ci
