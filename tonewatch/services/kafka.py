"""Apache Kafka in KRaft mode (one combined broker + controller), run from Maven Central jars.

The jars are resolved once by `mvn dependency:copy-dependencies` on docker/kafka/pom.xml and
cached under the cache dir, keyed by the pom's hash, so a later start downloads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

from tonewatch.services.base import LocalService
from tonewatch.services.exceptions import MissingDependencyError, ProbeError, ServiceStartError
from tonewatch.services.kafka_api_versions import fetch_api_versions
from tonewatch.services.process import Launch

POM = Path(__file__).resolve().parents[2] / "docker" / "kafka" / "pom.xml"

LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka
        level: INFO
      - name: org.apache.kafka
        level: WARN
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""


class KafkaService(LocalService):
    name = "kafka"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def libs_dir(self) -> Path:
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
        return self.settings.cache_dir.expanduser() / "kafka" / digest / "libs"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def install(self) -> None:
        if (self.libs_dir / ".complete").exists():
            return
        for tool in ("mvn", "java"):
            if shutil.which(tool) is None:
                package = "maven" if tool == "mvn" else "openjdk-17-jre-headless"
                raise MissingDependencyError(tool, f"apt-get install -y {package}")
        staging = self.libs_dir.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.process.log_path.open("a") as log:
            result = subprocess.run(
                ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                 f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if result.returncode != 0:
            raise ServiceStartError(
                self.name,
                f"mvn could not resolve the jars of {POM}",
                self.process.log_path,
                self.process.log_tail(),
            )
        (staging / ".complete").touch()
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        staging.rename(self.libs_dir)

    def _properties(self) -> str:
        host, ctl = self.settings.kafka_host, self.settings.kafka_controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{ctl}",
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{ctl}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics are created explicitly, with their partition counts (see streams/).
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "72",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def prepare(self) -> None:
        config = self.run_dir / "server.properties"
        self.write_if_changed(config, self._properties())
        self.write_if_changed(self.run_dir / "log4j2.yaml", LOG4J2)
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # `=`: a base64 id may start with "-", which argparse would take for an option.
        with self.process.log_path.open("a") as log:
            result = subprocess.run(
                ["java", "-cp", f"{self.libs_dir}/*", "kafka.tools.StorageTool", "format",
                 f"--cluster-id={cluster_id}", f"--config={config}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if result.returncode != 0:
            raise ServiceStartError(
                self.name,
                "formatting the KRaft storage failed",
                self.process.log_path,
                self.process.log_tail(),
            )

    def launch(self) -> Launch:
        argv = [
            "java",
            f"-Xms{self.settings.kafka_heap}", f"-Xmx{self.settings.kafka_heap}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.yaml'}",
            "-cp", f"{self.libs_dir}/*",
            "kafka.Kafka", str(self.run_dir / "server.properties"),
        ]  # fmt: skip
        return Launch(argv=argv, env={})

    def probe(self) -> str:
        try:
            versions = fetch_api_versions(
                self.settings.kafka_host, self.port, timeout_s=self.probe_timeout_s
            )
        except (OSError, ValueError) as exc:
            raise ProbeError(f"kafka: {exc}") from exc
        if "metadata.version" not in versions.finalized_features:
            raise ProbeError("kafka: the broker has not loaded its metadata yet")
        return versions.version
