"""Export a trained model into the Triton model repository as a new, immutable version, and
pin which version Triton serves.

A version folder holds `model.onnx` (encoder + pooling + both heads, ending in
probabilities), the fast tokenizer's `tokenizer.json`, `serving.json` and the backend's
`model.py`. It is assembled in a staging folder beside the repository and renamed into
place, so Triton never sees a half-written version; a killed export leaves only a staging
folder, which `clean_staging` removes.

The served version is pinned in the model's `config.pbtxt`
(`version_policy: { specific: { versions: [N] } }`), so writing a new version changes
nothing that serves, and a Triton restart serves the same champion. Only `pin_version`
(through `inference.serving.serve_version`) moves the pin. Writers of a model folder take
`model_lock`, so an export and a swap never interleave their config rewrites.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import string
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from inference.model import LoadedModel

TRITON_MODEL_DIR: Final = Path(__file__).parent / "triton_model"
CONFIG_FILE: Final = "config.pbtxt"
STAGING_DIR: Final = ".export-staging"  # beside the repository, never inside it
ONNX_OPSET: Final = 17
# The int8 graph: which ops run in int8, and how their fixed activation scales are found
# (measured against the alternatives in docs/quantisation.md).
INT8_OPS: Final = ("MatMul",)
INT8_CALIBRATION: Final = "MinMax"

_POLICY_START: Final = re.compile(r"^[ \t]*version_policy[ \t]*:?[ \t]*\{", re.MULTILINE)
_PINNED: Final = re.compile(
    r"^version_policy\s*:?\s*\{\s*specific\s*:?\s*\{\s*versions\s*:\s*\[?\s*(\d+)\s*\]?\s*\}\s*\}$"
)
# <model name>.pid<pid>.<uuid>: the pid tells a live export from a killed one's leftover.
_STAGING_NAME: Final = re.compile(r"^(?P<model>.+)\.pid(?P<pid>\d+)\.[0-9a-f]{32}$")


class ModelLocked(TimeoutError):
    """Another process kept the model folder locked (an export or a swap) for too long."""


@dataclass(frozen=True)
class ServingConfig:
    """Knobs of the served model (written into config.pbtxt)."""

    max_batch_size: int = 64
    preferred_batch_sizes: tuple[int, ...] = (16, 32, 64)
    max_queue_delay_us: int = 2000
    instances: int = 2
    intra_op_threads: int = 1  # per instance; 0: as many as the machine has
    quantize_int8: bool = True  # static int8: ~2x faster, ~no F1 cost (docs/quantisation.md)


def version_policy(version: int) -> str:
    """The config.pbtxt line that makes Triton serve exactly `version`."""
    if version < 1:
        raise ValueError(f"Triton versions start at 1, not {version}")
    return f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}"


def _policy_span(config: str) -> tuple[int, int] | None:
    """Where the version_policy entry is (its closing brace included), or None."""
    start = _POLICY_START.search(config)
    if start is None:
        return None
    depth = 0
    for index in range(start.end() - 1, len(config)):
        depth += {"{": 1, "}": -1}.get(config[index], 0)
        if depth == 0:
            return start.start(), index + 1
    raise ValueError("config.pbtxt: version_policy has an unclosed brace")


def with_pin(config: str, version: int) -> str:
    """`config` with its version policy replaced by a pin on `version`; all else kept."""
    line = version_policy(version)
    span = _policy_span(config)
    if span is None:
        return config.rstrip("\n") + "\n" + line + "\n"
    return config[: span[0]] + line + config[span[1] :]


def pinned(config: str) -> int | None:
    """The version a config pins, or None when its policy is not one specific version."""
    span = _policy_span(config)
    if span is None:
        return None
    match = _PINNED.match(config[span[0] : span[1]].strip())
    return int(match.group(1)) if match else None


def pinned_version(model_dir: Path) -> int | None:
    """The version the model's config.pbtxt pins (None: no config, or no single pin)."""
    config = model_dir / CONFIG_FILE
    return pinned(config.read_text()) if config.is_file() else None


def render_config(model_name: str, serving: ServingConfig, version: int) -> str:
    """The model's config.pbtxt, serving exactly `version`."""
    template = string.Template((TRITON_MODEL_DIR / CONFIG_FILE).read_text())
    text = template.substitute(
        max_batch_size=serving.max_batch_size,
        preferred_batch_sizes=", ".join(str(size) for size in serving.preferred_batch_sizes),
        max_queue_delay_us=serving.max_queue_delay_us,
        instances=serving.instances,
        intra_op_threads=serving.intra_op_threads or "",
    )
    return with_pin(text.replace('name: "tonewatch"', f'name: "{model_name}"'), version)


def write_config(model_dir: Path, text: str) -> None:
    """Replace config.pbtxt atomically: Triton reads either the old file or the new one."""
    tmp = model_dir / f".{CONFIG_FILE}.{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, model_dir / CONFIG_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def pin_version(model_dir: Path, version: int) -> None:
    """Pin `version` in the model's config.pbtxt (Triton applies it at the next load).

    Callers hold `model_lock(model_dir)`.
    """
    config = model_dir / CONFIG_FILE
    if not config.is_file():
        raise FileNotFoundError(f"{config} does not exist")
    text = config.read_text()
    if pinned(text) != version:
        write_config(model_dir, with_pin(text, version))


def pin_for_export(config: str | None, existing: list[int], new_version: int) -> int:
    """The version to pin while `new_version` is written: the pin already there; for an
    unpinned config, the newest existing version (what `latest { num_versions: 1 }` served);
    for a brand-new model, the new version itself."""
    current = pinned(config) if config is not None else None
    if current is not None:
        return current
    return existing[-1] if existing else new_version


@contextmanager
def model_lock(model_dir: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """Exclusive, cross-process lock on a model folder (flock on the folder itself, so no
    lock file appears in the repository). The kernel drops it if the holder dies."""
    fd = os.open(model_dir, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelLocked(f"{model_dir} stayed locked for {timeout_s}s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def version_source(version_dir: Path) -> str | None:
    """The trained model id a version was exported from (serving.json's `source`), if any."""
    try:
        source = json.loads((version_dir / "serving.json").read_text()).get("source")
    except (OSError, ValueError):
        return None
    return str(source) if source else None


def staging_root(repository: Path) -> Path:
    return repository.parent / STAGING_DIR


def clean_staging(repository: Path) -> list[Path]:
    """Remove what killed exports left in the staging folder; returns what it removed.

    Folders of exports still running (their process is alive) are kept.
    """
    root = staging_root(repository)
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        match = _STAGING_NAME.match(folder.name)
        if match and _alive(int(match.group("pid"))):
            continue
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def export_onnx(loaded: LoadedModel, path: Path) -> None:
    """The fp32 graph: encoder + pooling + both heads, ending in probabilities."""
    import torch  # imported here: swapping versions must not wait for torch to load
    from torch import nn

    class Probabilities(nn.Module):
        """What the ONNX graph computes: softmax sentiment and sigmoid risk."""

        def __init__(self) -> None:
            super().__init__()
            self.model = loaded.model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return self.model.probabilities(input_ids, attention_mask)

    wrapper = Probabilities().eval()
    sample = loaded.encode(["a short sample", "another, slightly longer sample text"])
    # The tracer warns about shape-dependent Python branches in transformers' masking code;
    # the graph is checked against the eager model by tests/integration/test_model_serving.py.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentiment_probs", "risk_probs"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentiment_probs": {0: "batch"},
                "risk_probs": {0: "batch"},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
        )


def quantize_static_int8(
    loaded: LoadedModel, fp32: Path, path: Path, calibration: Sequence[str]
) -> dict[str, object]:
    """Write the static int8 graph of `fp32` to `path`; returns what serving.json records.

    Static, not dynamic: dynamic quantisation computes each activation scale from the
    whole batch, so a message's probabilities moved with the messages batched beside it
    (up to 0.36 in risk on finance headlines). Here every scale is fixed at export, from
    `calibration` run one text at a time (no padding widens the ranges), so a message
    scores the same alone, in any batch and in any order.
    """
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class OneTextAtATime(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.texts = iter(calibration)

        def get_next(self) -> dict[str, object] | None:
            text = next(self.texts, None)
            if text is None:
                return None
            encoded = loaded.encode([text])
            return {name: tensor.numpy() for name, tensor in encoded.items()}

    quantize_static(
        str(fp32),
        str(path),
        OneTextAtATime(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(INT8_OPS),
        per_channel=True,
        activation_type=QuantType.QUInt8,  # u8 x s8: the fast int8 kernels on x86
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod[INT8_CALIBRATION],
        extra_options={
            "MatMulConstBOnly": True,  # weight MatMuls only: attention products stay fp32
            # Float outputs (int8 in, fp32 out, as dynamic quantisation had): quantising
            # them too was slower here and 2.5x further from fp32 (docs/quantisation.md).
            "OpTypesToExcludeOutputQuantization": ["MatMul"],
        },
    )
    return {
        "scheme": "static int8 (QDQ)",
        "weights": "int8, per channel",
        "activations": "uint8, per tensor, scales fixed at export; outputs fp32",
        "ops": list(INT8_OPS),
        "calibration": INT8_CALIBRATION,
        "calibration_texts": len(calibration),
    }


def _write_graph(
    loaded: LoadedModel, path: Path, serving: ServingConfig, calibration: Sequence[str]
) -> dict[str, object] | None:
    """The served graph at `path`: fp32, or its int8 quantisation; returns the latter's
    record (None for fp32)."""
    if not serving.quantize_int8:
        export_onnx(loaded, path)
        return None
    fp32 = path.with_suffix(".fp32.onnx")
    try:
        export_onnx(loaded, fp32)
        return quantize_static_int8(loaded, fp32, path, calibration)
    finally:
        fp32.unlink(missing_ok=True)


def export(
    loaded: LoadedModel,
    repository: Path,
    model_name: str = "tonewatch",
    serving: ServingConfig | None = None,
    source: str = "",
    calibration: Sequence[str] = (),
) -> int:
    """Write the next version of `model_name` into `repository`; returns its number.

    An int8 export (the default) needs `calibration`: a few hundred texts of the training
    mix (`retrain.calibration`) that fix its activation scales.

    The version is written, not served: the config keeps pinning the version it pinned (a
    brand-new model pins its first version). `inference.serving.serve_version` switches.
    """
    serving = serving or ServingConfig()
    if serving.quantize_int8 and not calibration:
        raise ValueError("an int8 export needs calibration texts (retrain.calibration)")
    model_dir = repository / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_root(repository) / f"{model_name}.pid{os.getpid()}.{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        quantisation = _write_graph(loaded, staging / "model.onnx", serving, calibration)
        loaded.tokenizer.save_pretrained(staging / "tokenizer")
        shutil.move(staging / "tokenizer" / "tokenizer.json", staging / "tokenizer.json")
        shutil.rmtree(staging / "tokenizer")
        shutil.copy2(TRITON_MODEL_DIR / "model.py", staging / "model.py")
        (staging / "serving.json").write_text(
            json.dumps(
                {
                    "onnx_file": "model.onnx",
                    "max_length": loaded.model.spec.max_length,
                    "pad_id": int(loaded.tokenizer.pad_token_id or 0),
                    "int8": serving.quantize_int8,
                    "quantisation": quantisation,
                    "source": source,
                },
                indent=2,
            )
        )
        # Numbering, config and rename under the lock: milliseconds, not the export's seconds.
        with model_lock(model_dir):
            existing = versions(model_dir)
            version = (existing or [0])[-1] + 1
            config = model_dir / CONFIG_FILE
            current = config.read_text() if config.is_file() else None
            pin = pin_for_export(current, existing, version)
            rendered = render_config(model_name, serving, pin)
            if current != rendered:
                write_config(model_dir, rendered)
            staging.rename(model_dir / str(version))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version
