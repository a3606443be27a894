"""Fine-tune the multi-task model: encoder + both heads, with early stopping.

CPU-friendly by default: bfloat16 autocast where the CPU has it, each epoch draws at most
`per_dataset_cap` training examples per dataset (so no dataset drowns the others, and
large ones still contribute fresh rows every epoch), and batches group texts of similar
length to waste little on padding. `dataset_caps` overrides the cap for named datasets
(the retrain worker draws all of its feedback; its base sets are replay, all at one cap),
and `dataset_repeats` draws a named dataset whole, that many times, every epoch: a full
training sees the finance tweets twice per epoch (they are the hardest sentiment set, and
the large sentiment and risk sets would otherwise outvote them). The learning rate warms
up over the first `warmup_share` of steps, then decays linearly to zero at the last epoch.
"""

from __future__ import annotations

import copy
import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import torch
from torch import nn

from inference.model import DEFAULT_ENCODER, LoadedModel, ModelSpec, new_model, probabilities_of
from retrain.datasets.base import Dataset, Example
from retrain.evaluate import DatasetMetrics, Probabilities, evaluate_examples
from retrain.splits import split_of
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = DEFAULT_ENCODER
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 2e-3
    warmup_share: float = 0.05
    trainable_layers: int = -1
    max_length: int = 64
    per_dataset_cap: int = 4000
    dataset_caps: dict[str, int] = field(default_factory=dict)
    dataset_repeats: dict[str, int] = field(default_factory=lambda: {"twitter_financial_news": 2})
    dev_cap: int = 300
    patience: int = 1
    seed: int = 13
    time_budget_s: float | None = None
    # "auto" trains under bfloat16 autocast where the CPU has native bf16 (AMX or
    # AVX512-BF16: a training step twice as fast here); "fp32" forces full precision.
    precision: str = "auto"


# `full` (the defaults above) makes the figures of docs/model.md: 83 min on 2 cores without bf16.
# `quick` is `tonewatch model train`'s default and what a first `tonewatch demo` trains, so
# a fresh machine shows alerts in minutes (13 on those cores): two epochs of at most 1,000
# rows per dataset, the finance tweets drawn like the rest.
RECIPES: Final[dict[str, TrainConfig]] = {
    "full": TrainConfig(),
    "quick": TrainConfig(epochs=2, per_dataset_cap=1000, dataset_repeats={}),
}


def uses_bf16(precision: str) -> bool:
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    return precision == "bf16" or (
        precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    dev_loss: float
    dev_sentiment_macro_f1: float | None
    dev_risk_macro_f1: float | None
    seconds: float

    @property
    def dev_score(self) -> float:
        """What picks the kept epoch: the mean of both tasks' dev macro-F1.

        Not the dev loss, which rises as soon as the big, easy sets grow overconfident,
        while the metrics we report (and the finance tweets) still improve."""
        scores = [s for s in (self.dev_sentiment_macro_f1, self.dev_risk_macro_f1) if s is not None]
        return sum(scores) / len(scores) if scores else 0.0


@dataclass
class TrainResult:
    model: LoadedModel
    config: TrainConfig
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = "completed all epochs"
    train_counts: dict[str, int] = field(default_factory=dict)
    bf16: bool = False


@dataclass
class _Encoded:
    """Token ids and targets of a list of examples, ready for batching."""

    ids: list[list[int]]
    sentiment: torch.Tensor  # (n,) long, -1 where unknown
    risk: torch.Tensor  # (n, 7) float
    risk_known: torch.Tensor  # (n, 7) float mask


def _encode(loaded: LoadedModel, examples: Sequence[Example]) -> _Encoded:
    ids = loaded.tokenizer(
        [e.text for e in examples], truncation=True, max_length=loaded.model.spec.max_length
    )["input_ids"]
    sentiment = torch.tensor(
        [SENTIMENT_LABELS.index(e.sentiment) if e.sentiment else -1 for e in examples]
    )
    return _Encoded(list(ids), sentiment, *_risk_targets(examples))


def _risk_targets(examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 7) risk targets and the (n, 7) mask of the labels each example vouches for."""
    risk = torch.tensor([[float(e.risks.get(r, False)) for r in RISK_LABELS] for e in examples])
    known = torch.tensor([[float(r in e.risks) for r in RISK_LABELS] for e in examples])
    return risk, known


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length texts (sorted within pools of 50 batches)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return input_ids, mask


class MultiTaskLoss(nn.Module):
    """Cross-entropy on known sentiments plus masked BCE on known risk labels."""

    def __init__(self, pos_weight: torch.Tensor) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=pos_weight)
        self.ce = nn.CrossEntropyLoss(ignore_index=-1, reduction="sum")

    def forward(
        self,
        logits: tuple[torch.Tensor, torch.Tensor],
        sentiment: torch.Tensor,
        risk: torch.Tensor,
        known: torch.Tensor,
    ) -> torch.Tensor:
        sentiment_logits, risk_logits = (part.float() for part in logits)
        has_sentiment = int((sentiment >= 0).sum())
        loss = torch.zeros(())
        if has_sentiment:
            loss = loss + self.ce(sentiment_logits, sentiment) / has_sentiment
        if known.sum() > 0:
            loss = loss + (self.bce(risk_logits, risk) * known).sum() / known.sum()
        return loss


def _pos_weight(examples: Sequence[Example]) -> torch.Tensor:
    """Rare risks weigh more (negatives per positive, between 1 and 10)."""
    risk, known = _risk_targets(examples)
    positives = (risk * known).sum(0)
    negatives = ((1 - risk) * known).sum(0)
    return (negatives / positives.clamp(min=1)).clamp(1.0, 10.0)


def warmup_then_linear_decay(total_steps: int, warmup: float = 0.05) -> Callable[[int], float]:
    """LR multiplier per step: linear warm-up over `warmup` of the steps, then down to 0."""
    warmup_steps = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def split_examples(datasets: Sequence[Dataset], split: str) -> dict[str, list[Example]]:
    return {d.name: [e for e in d.examples if split_of(e.text) == split] for d in datasets}


def _draw_sizes(pools: dict[str, list[Example]], config: TrainConfig) -> dict[str, int]:
    """How many examples an epoch draws from each pool: all of it, its cap, or all of it
    `dataset_repeats` times."""
    return {
        name: len(pool) * config.dataset_repeats[name]
        if name in config.dataset_repeats
        else min(len(pool), config.dataset_caps.get(name, config.per_dataset_cap))
        for name, pool in pools.items()
    }


def _sample(
    pools: dict[str, list[Example]], sizes: dict[str, int], rng: random.Random
) -> list[Example]:
    """`sizes[name]` examples of each pool: whole copies of it, then a random rest."""
    drawn: list[Example] = []
    for name in sorted(pools):
        pool = pools[name]
        whole, rest = divmod(sizes[name], len(pool)) if pool else (0, 0)
        drawn += pool * whole + rng.sample(pool, rest)
    return drawn


def _run_epoch(
    loaded: LoadedModel,
    encoded: _Encoded,
    loss_fn: MultiTaskLoss,
    optimizer: torch.optim.Optimizer | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    batch_size: int,
    rng: random.Random,
    report: Callable[[int, int], None],
    bf16: bool = False,
    outputs: tuple[Probabilities, Probabilities] | None = None,
) -> float:
    """One pass; trains when an optimizer is given. Returns the mean loss, and writes the
    (sentiment, risk) probabilities of each example into `outputs` when given."""
    model = loaded.model
    model.train(optimizer is not None)
    pad_id = int(loaded.tokenizer.pad_token_id or 0)
    batches = _batches([len(i) for i in encoded.ids], batch_size, rng)
    total = 0.0
    for done, batch in enumerate(batches, start=1):
        input_ids, mask = _pad([encoded.ids[i] for i in batch], pad_id)
        index = torch.tensor(batch)
        with (
            torch.set_grad_enabled(optimizer is not None),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
        ):
            logits = model(input_ids, mask)
            loss = loss_fn(
                logits, encoded.sentiment[index], encoded.risk[index], encoded.risk_known[index]
            )
        if outputs is not None:
            sentiment, risk = probabilities_of(
                (logits[0].detach().float(), logits[1].detach().float())
            )
            outputs[0][batch], outputs[1][batch] = sentiment.numpy(), risk.numpy()
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        total += float(loss.detach()) * len(batch)
        report(done, len(batches))
    return total / max(1, len(encoded.ids))


def _evaluate_dev(
    loaded: LoadedModel,
    dev: Sequence[Example],
    encoded: _Encoded,
    loss_fn: MultiTaskLoss,
    report: Callable[[int, int], None],
    bf16: bool,
) -> tuple[float, DatasetMetrics]:
    """Dev loss and dev metrics from one pass over the dev set, at the training precision."""
    sentiment = np.zeros((len(dev), len(SENTIMENT_LABELS)))
    risk = np.zeros((len(dev), len(RISK_LABELS)))
    loss = _run_epoch(
        loaded, encoded, loss_fn, None, None, 64, random.Random(0), report, bf16, (sentiment, risk)
    )
    return loss, evaluate_examples("dev", dev, lambda _texts: (sentiment, risk))


def train(
    config: TrainConfig,
    datasets: Sequence[Dataset],
    progress: ProgressCallback | None = None,
    start_from: LoadedModel | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train (or fine-tune `start_from`) and keep the weights of the best dev epoch.

    `on_epoch` hears each epoch's figures as soon as its dev pass ends (a long run's log
    then shows them as it goes, not only at the end)."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    spec = ModelSpec(encoder=config.encoder, max_length=config.max_length)
    loaded = start_from or new_model(spec, config.seed)
    loaded.model.freeze_encoder_below(config.trainable_layers)

    train_pools = split_examples(datasets, "train")
    dev_pools = split_examples(datasets, "dev")
    dev_sizes = {name: min(len(pool), config.dev_cap) for name, pool in dev_pools.items()}
    dev = _sample(dev_pools, dev_sizes, random.Random(config.seed))
    dev_encoded = _encode(loaded, dev)
    loss_fn = MultiTaskLoss(_pos_weight([e for pool in train_pools.values() for e in pool]))
    heads = [*loaded.model.sentiment_head.parameters(), *loaded.model.risk_head.parameters()]
    encoder_params = [p for p in loaded.model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": heads, "lr": config.head_learning_rate},
            {"params": encoder_params, "lr": config.learning_rate},
        ],
        weight_decay=0.01,
    )
    draw_sizes = _draw_sizes(train_pools, config)
    steps_per_epoch = -(-sum(draw_sizes.values()) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        warmup_then_linear_decay(max(1, steps_per_epoch * config.epochs), config.warmup_share),
    )
    result = TrainResult(
        loaded, config, train_counts={name: len(pool) for name, pool in train_pools.items()}
    )
    best_score, best_state, waited = -1.0, copy.deepcopy(loaded.model.state_dict()), 0
    started = time.monotonic()
    noop: ProgressCallback = lambda *_: None  # noqa: E731
    report = progress or noop
    bf16 = result.bf16 = uses_bf16(config.precision)
    for epoch in range(1, config.epochs + 1):
        epoch_start, phase = time.monotonic(), f"epoch {epoch}/{config.epochs}"
        encoded = _encode(loaded, _sample(train_pools, draw_sizes, rng))
        train_loss = _run_epoch(
            loaded, encoded, loss_fn, optimizer, scheduler, config.batch_size, rng,
            functools.partial(report, phase), bf16,
        )  # fmt: skip
        dev_loss, dev_metrics = _evaluate_dev(
            loaded, dev, dev_encoded, loss_fn, functools.partial(report, "dev"), bf16
        )
        stats = EpochStats(
            epoch, train_loss, dev_loss, dev_metrics.sentiment_macro_f1,
            dev_metrics.risk_macro_f1, time.monotonic() - epoch_start,
        )  # fmt: skip
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if stats.dev_score > best_score:
            best_score, best_state, waited = (
                stats.dev_score,
                copy.deepcopy(loaded.model.state_dict()),
                0,
            )
            result.best_epoch = epoch
        else:
            waited += 1
            if waited > config.patience:
                result.stop_reason = f"early stop: dev macro-F1 not improved for {waited} epochs"
                break
        if config.time_budget_s and time.monotonic() - started > config.time_budget_s:
            result.stop_reason = f"time budget of {config.time_budget_s:.0f}s spent"
            break
    loaded.model.load_state_dict(best_state)
    loaded.model.eval()
    return result
