"""Install the constant-time stub model (inference/stub_model/) into a Triton repository.

The stub has the real model's input and outputs but scores texts with a fixed keyword
lexicon: the end-to-end benchmark runs with it to measure the pipeline without the encoder,
and the fault tests use it for exact, known verdicts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

STUB_MODEL_DIR: Final = Path(__file__).parent / "stub_model"
STUB_MODEL_NAME: Final = "tonewatch_stub"
_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_LINE: Final = re.compile(r'^name: ".*"$', re.MULTILINE)


def stub_config(name: str) -> str:
    """The stub's config.pbtxt, with its name line set to `name`."""
    text = (STUB_MODEL_DIR / "config.pbtxt").read_text()
    return _NAME_LINE.sub(f'name: "{name}"', text, count=1)


def install_stub(repository: Path, name: str = STUB_MODEL_NAME) -> Path:
    """Write the stub into `repository` as model `name`, version 1; returns its folder.

    Idempotent: files already in place with the same content are left alone. Each file is
    written beside its place and renamed into it, so Triton never reads half a file.
    """
    if not _NAME.fullmatch(name) or name in {".", ".."}:
        raise ValueError(f"not a model name: {name!r}")
    model_dir = repository / name
    files = {
        model_dir / "config.pbtxt": stub_config(name),
        model_dir / "1" / "model.py": (STUB_MODEL_DIR / "model.py").read_text(),
    }
    for path, text in files.items():
        if path.is_file() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(text)
        staging.replace(path)
    return model_dir
