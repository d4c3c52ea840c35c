"""Models of a phase: one shared encoder, one head per task, and the wrapper Trainer optimises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, PreTrainedModel

from xstilts.contracts.checkpoint import Pooling
from xstilts.contracts.kinds import TaskKind
from xstilts.models.heads import head_class
from xstilts.tasks import Task


def task_model(task: Task, encoder: PreTrainedModel, pooling: Pooling = "cls") -> PreTrainedModel:
    """A fresh head for ``task`` on top of ``encoder`` (shared, not copied), pooled as ``pooling`` says."""
    config = encoder.config.__class__.from_dict(encoder.config.to_dict())
    if task.kind is TaskKind.SPAN_QA:
        config.num_labels = 2  # the span head's two outputs per token: start and end
    elif task.kind is not TaskKind.MULTIPLE_CHOICE:
        config.num_labels = task.num_labels
        config.id2label = dict(enumerate(task.labels))
        config.label2id = {label: i for i, label in enumerate(task.labels)}
    model = head_class(task.kind, pooling).from_config(config)
    setattr(model, model.base_model_prefix, encoder)
    return model


def head_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The parameters of ``model`` outside its encoder: the task's head."""
    prefix = model.base_model_prefix + "."
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith(prefix)}


def save_head(model: PreTrainedModel, path: Path) -> None:
    save_file(head_state(model), str(path))


def load_head(model: PreTrainedModel, path: Path) -> None:
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    prefix = model.base_model_prefix + "."
    if unexpected or any(not k.startswith(prefix) for k in missing):
        raise ValueError(f"head file {path} does not fit the model")


def load_encoder(start: str) -> PreTrainedModel:
    """The encoder (base model) of a checkpoint or pretrained model folder, without any head."""
    return AutoModel.from_pretrained(start)


def freeze_word_embeddings(encoder: PreTrainedModel) -> int:
    """Stop training the word embedding matrix; returns how many parameters were frozen."""
    weight = encoder.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


class MultiTaskModel(torch.nn.Module):
    """Task models sharing one encoder; each batch names its task."""

    def __init__(self, models: dict[str, PreTrainedModel]) -> None:
        super().__init__()
        self.tasks = torch.nn.ModuleDict(models)

    def forward(
        self,
        task: str,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> Any:
        if start_positions is not None:  # extractive QA: the gold span's token positions instead of labels
            return self.tasks[task](
                input_ids=input_ids,
                attention_mask=attention_mask,
                start_positions=start_positions,
                end_positions=end_positions,
            )
        return self.tasks[task](input_ids=input_ids, attention_mask=attention_mask, labels=labels)
