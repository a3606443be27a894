"""Which version of a model Triton serves, switched without downtime, through tritonclient.

- **The pin.** The served version is pinned in the model's config.pbtxt
  (`version_policy: { specific: { versions: [N] } }`, inference/repository.py), so a new
  version folder changes nothing until it is chosen, and a Triton restart serves the same
  champion.
- **The swap** (`serve_version`): pin N, `load_model`, wait until N is the only READY
  version. Triton keeps the old version serving until N is ready, then sends new requests
  to N and lets the old version finish its in-flight requests while it unloads, so nothing
  fails. If N does not load, Triton keeps the old version serving; the old config is
  written back and reloaded (so a restart serves it too), and `ServingError` says why.
- **A smoke test before any traffic** (`stage_candidate`). A request without a version goes
  to the highest READY version, so a challenger loaded beside the champion under the main
  model's name would take traffic before it was tested. The challenger is therefore
  exported as a throwaway model of its own, `<name>__candidate`, loaded, smoke-tested with
  an explicit version, then unloaded and deleted. Only then is it exported as the main
  model's next (unserved) version and swapped in. That costs a second ONNX export, a few
  seconds, and keeps anything untested out of the main model's folder.
- **Half-written versions** are never visible (exports are renamed into place, and
  `clean_staging` removes what killed exports left behind). A version folder that is not
  pinned is never loaded; a broken one that gets pinned fails its load, and the champion
  keeps serving.

Every call to Triton carries a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from inference.client import INPUT, RISK_OUTPUT, SENTIMENT_OUTPUT
from inference.repository import (
    CONFIG_FILE,
    ModelLocked,
    ServingConfig,
    clean_staging,
    export,
    model_lock,
    pin_version,
    versions,
    write_config,
)
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS

if TYPE_CHECKING:
    from inference.model import LoadedModel
    from tonewatch.config import Settings

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S: Final = 120.0  # a Python-backend version loads in seconds on this machine
SMOKE_TIMEOUT_S: Final = 30.0
CANDIDATE_SUFFIX: Final = "__candidate"
SMOKE_TEXTS: Final = (
    "$ACME shares plunge after regulators open a fraud probe",
    "Thanks, that fixed it! Great support.",
    "Quarterly revenue was in line with guidance.",
    "I am closing my account, this is the third outage this week",
)
_POLL_S: Final = 0.1
_READY: Final = "READY"


class ServingError(Exception):
    """A version could not be served; whatever served before keeps serving."""


class SmokeTestFailed(ServingError):
    """A loaded version did not answer like a tonewatch model."""


@dataclass(frozen=True)
class SmokeResult:
    """A passed smoke test: which version answered, on how many texts, how fast."""

    model_name: str
    version: int
    texts: int
    seconds: float


def candidate_name(model_name: str) -> str:
    """The throwaway model a challenger is smoke-tested under, away from traffic."""
    return f"{model_name}{CANDIDATE_SUFFIX}"


def served_version(url: str, model_name: str, timeout_s: float = 10.0) -> int | None:
    """The version requests without a version go to (the highest READY one), or None."""
    client = grpcclient.InferenceServerClient(url)
    try:
        ready = _ready(client, model_name, timeout_s)
    except InferenceServerException as exc:
        raise ServingError(f"Triton at {url}: {exc.message()}") from exc
    finally:
        client.close()
    return max(ready) if ready else None


def serve_version(
    settings: Settings, model_name: str, version: int, timeout_s: float = LOAD_TIMEOUT_S
) -> None:
    """Make Triton serve `version` of `model_name` (pinned on disk), dropping no request.

    Returns once `version` is the only READY version. Otherwise raises ServingError, after
    writing the previous config back and reloading it: the previous version keeps serving.
    """
    model_dir = settings.model_repository.resolve() / model_name
    if version not in versions(model_dir):
        raise ServingError(f"{model_name} has no version {version} in {model_dir}")
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        # One swap at a time per model, across processes (the retrain worker, the CLI).
        with model_lock(model_dir, timeout_s):
            before = (model_dir / CONFIG_FILE).read_text()
            pin_version(model_dir, version)
            try:
                _load(client, model_name, version, timeout_s)
            except ServingError as exc:
                raise ServingError(
                    f"{exc}; {_restore(client, model_dir, model_name, before, timeout_s)}"
                ) from exc
    except ModelLocked as exc:
        raise ServingError(f"{model_name}: another export or swap is under way ({exc})") from exc
    finally:
        client.close()
    log.info("Triton serves %s version %d", model_name, version)


def smoke_test(
    url: str,
    model_name: str,
    version: int,
    texts: Sequence[str] = SMOKE_TEXTS,
    timeout_s: float = SMOKE_TIMEOUT_S,
) -> SmokeResult:
    """Classify `texts` with exactly `version` and check the answer against the model
    contract: shapes [n,3] and [n,7], finite probabilities, sentiment rows summing to 1,
    the version named in the response, all within `timeout_s`. SmokeTestFailed otherwise."""
    n = len(texts)
    if n == 0:
        raise ValueError("a smoke test needs texts")
    target = f"{model_name} version {version}"
    array = np.array([[text.encode()] for text in texts], dtype=np.object_)
    tensor = grpcclient.InferInput(INPUT, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    outputs = [
        grpcclient.InferRequestedOutput(SENTIMENT_OUTPUT),
        grpcclient.InferRequestedOutput(RISK_OUTPUT),
    ]
    client = grpcclient.InferenceServerClient(url)
    started = time.monotonic()
    try:
        result = client.infer(
            model_name, [tensor], model_version=str(version), outputs=outputs,
            client_timeout=timeout_s,
        )  # fmt: skip
    except InferenceServerException as exc:
        raise SmokeTestFailed(f"{target}: {exc.message()}") from exc
    finally:
        client.close()
    seconds = time.monotonic() - started
    sentiment, risk = result.as_numpy(SENTIMENT_OUTPUT), result.as_numpy(RISK_OUTPUT)
    problems = []
    answered = str(result.get_response().model_version)
    if answered != str(version):
        problems.append(f"answered as version {answered!r}")
    expected = ((n, len(SENTIMENT_LABELS)), (n, len(RISK_LABELS)))
    shapes = (getattr(sentiment, "shape", None), getattr(risk, "shape", None))
    if shapes != expected:
        problems.append(f"output shapes {shapes}, expected {expected}")
    else:
        both = np.concatenate([sentiment, risk], axis=1)
        if not np.isfinite(both).all():
            problems.append("non-finite probabilities")
        elif both.min() < 0 or both.max() > 1:
            problems.append("probabilities outside [0, 1]")
        elif not np.allclose(sentiment.sum(axis=1), 1.0, atol=1e-3):
            problems.append(f"sentiment rows sum to {sentiment.sum(axis=1).round(4).tolist()}")
    if seconds > timeout_s:
        problems.append(f"took {seconds:.1f}s, over the {timeout_s}s deadline")
    if problems:
        raise SmokeTestFailed(f"{target}: " + "; ".join(problems))
    return SmokeResult(model_name, version, n, seconds)


def stage_candidate(
    settings: Settings,
    model: LoadedModel,
    serving: ServingConfig | None = None,
    texts: Sequence[str] = SMOKE_TEXTS,
    timeout_s: float = LOAD_TIMEOUT_S,
    calibration: Sequence[str] = (),
) -> SmokeResult:
    """Export `model` as the throwaway `<name>__candidate`, load it, smoke-test it, and
    remove it again, whatever happened. No request to the served model ever reaches it.
    `calibration`: as for `inference.repository.export`.

    Raises ServingError (SmokeTestFailed for wrong answers) when it fails.
    """
    name = candidate_name(settings.triton_model_name)
    repository = settings.model_repository.resolve()
    # One instance is enough for a smoke test; the ONNX graph is the one that will serve.
    serving = dataclasses.replace(serving or ServingConfig(), instances=1)
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        _discard(client, repository / name, timeout_s)  # what a killed round left
        version = export(
            model, repository, name, serving, source="candidate", calibration=calibration
        )
        _load(client, name, version, timeout_s)
        return smoke_test(settings.triton_grpc_url, name, version, texts)
    finally:
        _discard(client, repository / name, timeout_s)
        client.close()


def _states(
    client: grpcclient.InferenceServerClient, model_name: str, timeout_s: float
) -> dict[int, str]:
    index = client.get_model_repository_index(client_timeout=timeout_s)
    return {int(m.version): m.state for m in index.models if m.name == model_name and m.version}


def _ready(
    client: grpcclient.InferenceServerClient, model_name: str, timeout_s: float
) -> list[int]:
    return [v for v, state in _states(client, model_name, timeout_s).items() if state == _READY]


def _reasons(client: grpcclient.InferenceServerClient, model_name: str, version: int) -> str:
    index = client.get_model_repository_index(client_timeout=10.0)
    for m in index.models:
        if m.name == model_name and m.version == str(version) and m.reason:
            return str(m.reason).strip().splitlines()[0]
    return ""


def _load(
    client: grpcclient.InferenceServerClient, model_name: str, version: int, timeout_s: float
) -> None:
    """Load the model as its config says; return once `version` is its only READY version."""
    deadline = time.monotonic() + timeout_s
    try:
        client.load_model(model_name, client_timeout=timeout_s)
        while True:
            states = _states(client, model_name, timeout_s)
            others = sorted(v for v, state in states.items() if state == _READY and v != version)
            if states.get(version) == _READY and not others:
                return
            if time.monotonic() > deadline:
                raise ServingError(
                    f"{model_name} version {version} is {states.get(version, 'unknown')} and "
                    f"versions {others} still READY after {timeout_s}s"
                )
            time.sleep(_POLL_S)
    except InferenceServerException as exc:
        reason = exc.message() or str(exc.status())
        with contextlib.suppress(InferenceServerException):  # the load's own error stands
            reason = _reasons(client, model_name, version) or reason
        raise ServingError(f"{model_name} version {version} did not load: {reason}") from exc


def _restore(
    client: grpcclient.InferenceServerClient,
    model_dir: Path,
    model_name: str,
    config: str,
    timeout_s: float,
) -> str:
    """Write the previous config back and reload it; says what serves now."""
    write_config(model_dir, config)
    try:
        client.load_model(model_name, client_timeout=timeout_s)
        ready = _ready(client, model_name, timeout_s)
    except InferenceServerException as exc:
        log.error("%s: reloading the previous config failed: %s", model_name, exc.message())
        return f"the previous config is back on disk, but reloading it failed: {exc.message()}"
    if not ready:
        return "the previous config is back on disk; no version is serving"
    return f"version {max(ready)} keeps serving"


def _discard(client: grpcclient.InferenceServerClient, model_dir: Path, timeout_s: float) -> None:
    """Unload a throwaway model (if Triton has it) and delete its folder."""
    with contextlib.suppress(InferenceServerException):  # not loaded: nothing to unload
        client.unload_model(model_dir.name, client_timeout=timeout_s)
    shutil.rmtree(model_dir, ignore_errors=True)


__all__ = [
    "SMOKE_TEXTS",
    "ServingError",
    "SmokeResult",
    "SmokeTestFailed",
    "candidate_name",
    "clean_staging",
    "serve_version",
    "served_version",
    "smoke_test",
    "stage_candidate",
]
