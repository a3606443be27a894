"""No Docker engine runs here: check the production compose file's structure instead."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tonewatch.config import Settings

pytestmark = pytest.mark.unit

DOCKER = Path(__file__).resolve().parents[2] / "docker"
INFRA = {"kafka", "redis", "postgres", "triton"}
APPS = {"worker", "api", "webhooks", "retrain"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yml").read_text())
    return loaded


def test_declares_the_infrastructure_and_the_apps(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == INFRA | APPS
    images = {name: compose["services"][name].get("image", "") for name in INFRA}
    assert images["kafka"].startswith("apache/kafka:")
    assert images["redis"].startswith("redis:")
    assert images["postgres"].startswith("postgres:")
    triton_build = compose["services"]["triton"]["build"]["dockerfile"]
    base = (DOCKER.parent / triton_build).read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:\S+-py3$", base, re.M)


def test_every_service_has_a_health_check_or_waits_on_one(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in INFRA | {"api"}:
        assert services[name]["healthcheck"]["test"], name
    for name in APPS:
        depends = services[name]["depends_on"]
        assert {dep: cond["condition"] for dep, cond in depends.items()} == dict.fromkeys(
            INFRA, "service_healthy"
        )


def test_triton_gets_a_gpu_and_explicit_model_control(compose: dict[str, Any]) -> None:
    triton = compose["services"]["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert "--model-control-mode=explicit" in triton["command"]
    assert "models:/models" in triton["volumes"]
    assert "models:/models" in compose["services"]["retrain"]["volumes"]


def test_kafka_runs_kraft_without_auto_created_topics(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-data:/var/lib/kafka/data" in compose["services"]["kafka"]["volumes"]


def test_app_env_uses_only_real_settings_and_points_at_the_containers(
    compose: dict[str, Any],
) -> None:
    fields = {f"TONEWATCH_{name.upper()}" for name in Settings.model_fields}
    for name in APPS:
        env = compose["services"][name]["environment"]
        assert set(env) <= fields, set(env) - fields
        assert env["TONEWATCH_KAFKA_HOST"] == "kafka"
        assert env["TONEWATCH_TRITON_HOST"] == "triton"
        assert "@postgres:5432/" in env["TONEWATCH_DATABASE_URL"]
        assert env["TONEWATCH_REDIS_URL"].startswith("redis://redis:6379")


def test_versions_match_the_local_launchers(compose: dict[str, Any]) -> None:
    pom = (DOCKER / "kafka" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert kafka_version is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version.group(1)}"
    postgres_major = compose["services"]["postgres"]["image"].split(":")[1]
    assert postgres_major.isdigit()


def test_volumes_are_declared(compose: dict[str, Any]) -> None:
    used = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
    }
    assert used == set(compose["volumes"])


def test_triton_image_runs_the_onnx_runtime_of_the_lock() -> None:
    dockerfile = (DOCKER / "triton.Dockerfile").read_text()
    lock = (DOCKER.parent / "requirements.lock").read_text()
    pinned = re.search(r"^onnxruntime==(\S+)$", lock, re.M)
    assert pinned is not None
    assert f"ARG ONNXRUNTIME_VERSION={pinned.group(1)}" in dockerfile
    # The backend imports exactly these; torch is not needed on the server.
    backend = (DOCKER.parent / "inference" / "triton_model" / "model.py").read_text()
    imports = set(re.findall(r"^(?:import|from) (\w+)", backend, re.M))
    assert imports == {
        "json",
        "os",
        "pathlib",
        "numpy",
        "onnxruntime",
        "triton_python_backend_utils",
        "tokenizers",
    }
