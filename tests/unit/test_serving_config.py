"""The served-version pin in config.pbtxt, the model lock and the staging clean-up
(inference/repository.py), on files only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from inference.repository import (
    CONFIG_FILE,
    STAGING_DIR,
    ServingConfig,
    clean_staging,
    export,
    model_lock,
    pin_for_export,
    pin_version,
    pinned,
    pinned_version,
    render_config,
    with_pin,
)
from inference.stub import stub_config

if TYPE_CHECKING:
    from inference.model import LoadedModel

pytestmark = pytest.mark.unit


def parse(config: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(config, model_config_pb2.ModelConfig())


def test_the_rendered_config_parses_pins_one_version_and_keeps_the_rest() -> None:
    serving = ServingConfig(instances=3, max_queue_delay_us=500, preferred_batch_sizes=(8, 16))
    parsed = parse(render_config("mymodel", serving, 7))
    assert list(parsed.version_policy.specific.versions) == [7]
    assert parsed.name == "mymodel"
    assert parsed.backend == "python"
    assert parsed.instance_group[0].count == 3
    assert list(parsed.dynamic_batching.preferred_batch_size) == [8, 16]
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 500
    assert [o.name for o in parsed.output] == ["sentiment_probs", "risk_probs"]
    assert [list(o.dims) for o in parsed.output] == [[3], [7]]
    assert parsed.parameters["intra_op_threads"].string_value == "1"


def test_repinning_changes_only_the_version_policy() -> None:
    first = render_config("m", ServingConfig(), 1)
    second = with_pin(first, 12)
    assert pinned(first) == 1
    assert pinned(second) == 12
    a, b = parse(first), parse(second)
    b.version_policy.CopyFrom(a.version_policy)
    assert a == b
    changed = [
        (x, y) for x, y in zip(first.splitlines(), second.splitlines(), strict=True) if x != y
    ]
    assert changed == [
        (
            "version_policy: { specific: { versions: [ 1 ] } }",
            "version_policy: { specific: { versions: [ 12 ] } }",
        )
    ]


def test_a_latest_policy_is_not_a_pin_and_is_replaced_by_one() -> None:
    config = stub_config("stub")  # version_policy: { latest: { num_versions: 1 } }
    assert pinned(config) is None
    repinned = with_pin(config, 2)
    assert list(parse(repinned).version_policy.specific.versions) == [2]
    assert "latest" not in repinned
    assert repinned.count("version_policy") == 1


def test_a_multi_line_policy_or_none_at_all_is_handled() -> None:
    multi = textwrap.dedent("""\
        name: "m"
        backend: "python"
        version_policy {
          specific { versions: [ 4 ] }
        }
        max_batch_size: 8
    """)
    assert pinned(multi) == 4
    repinned = with_pin(multi, 5)
    assert parse(repinned).max_batch_size == 8
    assert list(parse(repinned).version_policy.specific.versions) == [5]
    bare = 'name: "m"\nbackend: "python"\n'
    assert pinned(bare) is None
    assert list(parse(with_pin(bare, 3)).version_policy.specific.versions) == [3]
    two = with_pin(bare, 3).replace("[ 3 ]", "[ 3, 4 ]")
    assert pinned(two) is None  # not one specific version
    with pytest.raises(ValueError, match="start at 1"):
        with_pin(bare, 0)


def test_an_export_keeps_the_pin_and_pins_a_new_model_to_its_first_version() -> None:
    config = render_config("m", ServingConfig(), 3)
    assert pin_for_export(config, [1, 2, 3, 4], 5) == 3  # the champion keeps serving
    # Before pins existed `latest` served the newest version: keep serving that one.
    assert pin_for_export(stub_config("m"), [1, 2, 8], 9) == 8
    assert pin_for_export(None, [], 1) == 1


def test_pin_version_rewrites_the_file_atomically(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / CONFIG_FILE).write_text(render_config("m", ServingConfig(), 1))
    with model_lock(model_dir):
        pin_version(model_dir, 2)
    assert pinned_version(model_dir) == 2
    assert [p.name for p in model_dir.iterdir()] == [CONFIG_FILE]  # no temporary file left
    assert pinned_version(tmp_path / "missing") is None
    with pytest.raises(FileNotFoundError):
        pin_version(tmp_path / "missing", 1)


def test_the_model_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from inference.repository import ModelLocked, model_lock
        try:
            with model_lock(Path({str(tmp_path)!r}), timeout_s=0.2):
                print("got it")
        except ModelLocked:
            print("timed out")
    """)

    def other_process() -> str:
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        return run.stdout.strip() or run.stderr

    with model_lock(tmp_path):
        assert other_process() == "timed out"
    assert other_process() == "got it"


def test_clean_staging_removes_what_dead_exports_left_and_keeps_live_ones(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    repository.mkdir()
    staging = tmp_path / STAGING_DIR
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    leftovers = [
        staging / f"tonewatch.pid{int(dead.stdout)}.{'a' * 32}",  # killed export
        staging / "tonewatch-9-0123456789abcdef0123456789abcdef",  # the format before pids
    ]
    running = staging / f"tonewatch.pid{os.getpid()}.{'b' * 32}"
    for folder in (*leftovers, running):
        (folder / "tokenizer").mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"half")
    assert sorted(clean_staging(repository)) == sorted(leftovers)
    assert [p.name for p in staging.iterdir()] == [running.name]
    assert clean_staging(tmp_path / "elsewhere" / "models") == []


def test_an_int8_export_without_calibration_texts_fails_before_writing(tmp_path: Path) -> None:
    # Its activation scales would be guessed: refuse before any folder is made.
    with pytest.raises(ValueError, match="calibration"):
        export(cast("LoadedModel", None), tmp_path / "models", "m", ServingConfig())
    assert not (tmp_path / "models").exists()
