"""Task heads on an encoder, pooled from the first token ([CLS], as transformers' heads) or from the token mean.

e5 models are trained with mean pooling: cut to a few layers, their first-token state is nearly the same for every
input, so a [CLS] head has nothing to learn from. A mean-pooled head reads the average of the unpadded token
states. The choice is recorded in the checkpoint's config.json (``xstilts_pooling``); :func:`load_task_model` reads
it back, so training, evaluation, export and the naive server load the same head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import MultipleChoiceModelOutput, SequenceClassifierOutput

from xstilts.contracts.checkpoint import POOLING_KEY, Pooling
from xstilts.contracts.kinds import TaskKind


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The average of the token states the attention mask keeps."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class MeanPooledHead(PreTrainedModel):
    """Encoder, mean over unpadded tokens, dropout, one linear layer."""

    config_class = PretrainedConfig
    base_model_prefix = "encoder"

    def __init__(self, config: PretrainedConfig, outputs: int) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config)
        dropout = getattr(config, "classifier_dropout", None)
        self.dropout = torch.nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = torch.nn.Linear(config.hidden_size, outputs)
        config.update({POOLING_KEY: "mean"})
        self.post_init()

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> MeanPooledHead:
        """A fresh model from ``config``, as the Auto classes build theirs."""
        return cls(config)

    def _init_weights(self, module: torch.nn.Module) -> None:
        if module is getattr(self, "classifier", None):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            module.bias.data.zero_()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> Any:
        """Logits per item, or per (item, choice) when the inputs carry a choice axis; the loss given labels."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        choices = input_ids.shape[1] if input_ids.dim() == 3 else None
        if choices is not None:
            inputs = {k: None if t is None else t.reshape(-1, t.shape[-1]) for k, t in inputs.items()}
        inputs = {k: t for k, t in inputs.items() if t is not None}
        hidden = self.encoder(**inputs).last_hidden_state
        logits = self.classifier(self.dropout(mean_pool(hidden, inputs["attention_mask"])))
        if choices is not None:
            logits = logits.reshape(-1, choices)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return self.output_type(loss=loss, logits=logits)


class MeanPooledForSequenceClassification(MeanPooledHead):
    """Sequence (pair) classification from the mean-pooled encoder states."""

    output_type = SequenceClassifierOutput

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config, config.num_labels)


class MeanPooledForMultipleChoice(MeanPooledHead):
    """Multiple choice: one score per (context, choice) sequence from its mean-pooled states."""

    output_type = MultipleChoiceModelOutput

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config, 1)


def head_class(kind: TaskKind, pooling: Pooling = "cls") -> Any:
    """The model class for a task of ``kind`` with ``pooling`` (a tagging head reads every token: no pooling)."""
    if kind is TaskKind.TOKEN_CLASSIFICATION:
        return AutoModelForTokenClassification
    if kind is TaskKind.SPAN_QA:  # start and end logits per token: no pooling
        return AutoModelForQuestionAnswering
    multiple_choice = kind is TaskKind.MULTIPLE_CHOICE
    if pooling == "mean":
        return MeanPooledForMultipleChoice if multiple_choice else MeanPooledForSequenceClassification
    return AutoModelForMultipleChoice if multiple_choice else AutoModelForSequenceClassification


def load_task_model(checkpoint: Path | str, kind: TaskKind) -> PreTrainedModel:
    """A checkpoint's model with its head (the pooling it was trained with), in eval mode."""
    config = AutoConfig.from_pretrained(checkpoint)
    pooling = getattr(config, POOLING_KEY, "cls")
    return head_class(kind, pooling).from_pretrained(checkpoint, config=config).eval()
