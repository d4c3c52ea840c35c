"""The graph interface of each task kind, declared once: its inputs, its output and their dynamic axes.

As optimum's per-architecture ``OnnxConfig`` declares ``inputs`` and ``outputs`` (axis index -> axis name), this
declares what every xstilts graph of a kind takes and gives; the export checks optimum's config and each written
graph against it, and the feeds (parity, calibration, measurement) are shaped by it. Pure Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xstilts.contracts.bundle import TensorSpec
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError

BATCH, CHOICES, SEQUENCE = "batch_size", "num_choices", "sequence_length"  # optimum's axis names
TOKEN_INPUTS = ("input_ids", "attention_mask")  # what the tokenizer gives, in every graph
ZERO_INPUTS = ("token_type_ids",)  # what some architectures (BERT) also take; XLM-R's tokenizer leaves them zero
OUTPUT = "logits"  # a classifier's output; an embedding graph's is EMBEDDING_OUTPUT
EMBEDDING_OUTPUT = "embedding"
SPAN_OUTPUTS = ("start_logits", "end_logits")  # an extractive QA graph's, as optimum's question-answering config

Axes = dict[int, str]


def token_feeds(ids: Any, mask: Any) -> dict[str, Any]:
    """The token inputs by name."""
    return dict(zip(TOKEN_INPUTS, (ids, mask), strict=True))


@dataclass(frozen=True)
class GraphInterface:
    """The named dynamic axes of a kind's token inputs and of its one output (``output``: its name)."""

    kind: TaskKind
    token_axes: tuple[str, ...]
    output_axes: tuple[str, ...]  # the dynamic ones; label axes (per item, per token) and vector dimensions are fixed
    output: str = OUTPUT
    more_outputs: tuple[str, ...] = ()  # further outputs with the same axes (span QA's end logits)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Every output, in the order a graph gives them."""
        return (self.output, *self.more_outputs)

    @property
    def inputs(self) -> dict[str, Axes]:
        """The required inputs, as ``OnnxConfig.inputs`` has them."""
        return {name: dict(enumerate(self.token_axes)) for name in TOKEN_INPUTS}

    @property
    def outputs(self) -> dict[str, Axes]:
        return {name: dict(enumerate(self.output_axes)) for name in self.output_names}

    def check_onnx_config(self, onnx_config: Any) -> None:
        """Fail unless optimum's config for the architecture declares this interface (plus optional zero inputs)."""
        declared = {name: dict(axes) for name, axes in onnx_config.inputs.items()}
        optional = {name: dict(enumerate(self.token_axes)) for name in ZERO_INPUTS if name in declared}
        outputs = {name: dict(axes) for name, axes in onnx_config.outputs.items()}
        if declared != {**self.inputs, **optional} or outputs != self.outputs:
            raise XstiltsError(
                f"optimum's ONNX config declares inputs {declared} and outputs {outputs}, not the {self.kind} "
                f"interface {self.inputs} -> {self.outputs}"
            )

    def check_graph(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], where: str) -> None:
        """Fail unless a written graph has this interface: the inputs, the output and their named axes."""
        expected = {**self.inputs, **{n: dict(enumerate(self.token_axes)) for n in ZERO_INPUTS}}
        problems = [f"unexpected input {t.name}" for t in inputs if t.name not in expected]
        names = {t.name for t in inputs}
        problems += [f"no input {name}" for name in TOKEN_INPUTS if name not in names]
        problems += [f"no output {name}" for name in self.outputs if name not in {t.name for t in outputs}]
        for tensor in [*inputs, *outputs]:
            axes = expected.get(tensor.name) or self.outputs.get(tensor.name) or {}
            if any(index >= len(tensor.shape) or tensor.shape[index] != axis for index, axis in axes.items()):
                problems.append(f"{tensor.name} has shape {tensor.shape}, not axes {axes}")
        if problems:
            raise XstiltsError(f"{where} does not have the {self.kind} graph interface: {'; '.join(problems)}")

    def shape(self, batch: int, length: int, choices: int | None) -> tuple[int, ...]:
        """The token inputs' shape for a batch of ``batch`` items of ``length`` tokens (and ``choices`` choices)."""
        sizes = {BATCH: batch, CHOICES: choices, SEQUENCE: length}
        return tuple(int(sizes[axis]) for axis in self.token_axes)  # type: ignore[arg-type]


INTERFACES: Mapping[TaskKind, GraphInterface] = {
    TaskKind.PAIR: GraphInterface(TaskKind.PAIR, (BATCH, SEQUENCE), (BATCH,)),
    TaskKind.SINGLE: GraphInterface(TaskKind.SINGLE, (BATCH, SEQUENCE), (BATCH,)),
    TaskKind.MULTIPLE_CHOICE: GraphInterface(TaskKind.MULTIPLE_CHOICE, (BATCH, CHOICES, SEQUENCE), (BATCH, CHOICES)),
    TaskKind.EMBEDDING: GraphInterface(TaskKind.EMBEDDING, (BATCH, SEQUENCE), (BATCH,), EMBEDDING_OUTPUT),
    TaskKind.SPAN_QA: GraphInterface(
        TaskKind.SPAN_QA, (BATCH, SEQUENCE), (BATCH, SEQUENCE), SPAN_OUTPUTS[0], SPAN_OUTPUTS[1:]
    ),
    TaskKind.TOKEN_CLASSIFICATION: GraphInterface(TaskKind.TOKEN_CLASSIFICATION, (BATCH, SEQUENCE), (BATCH, SEQUENCE)),
}


def interface_of(kind: TaskKind | str) -> GraphInterface:
    """The graph interface of a task kind."""
    return INTERFACES[TaskKind(kind)]
