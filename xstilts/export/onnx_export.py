"""The float32 ONNX graph of a checkpoint, exported by optimum (the base every variant starts from)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from xstilts.contracts.interface import interface_of
from xstilts.contracts.kinds import TaskKind
from xstilts.export.graph import graph_interface

# optimum's task names for the heads xstilts trains.
OPTIMUM_TASKS = {
    TaskKind.PAIR: "text-classification",
    TaskKind.SINGLE: "text-classification",
    TaskKind.MULTIPLE_CHOICE: "multiple-choice",
    TaskKind.SPAN_QA: "question-answering",
    TaskKind.TOKEN_CLASSIFICATION: "token-classification",
}
EXTERNAL_DATA_SUFFIX = "_data"
SENTENCE_OPSET = 17  # optimum's default for XLM-R and BERT


def export_sentence_graph(module: Any, config: Any, folder: Path, opset: int | None = None) -> Path:
    """Trace a sentence-embedding module (:func:`xstilts.export.pooling.sentence_module`) to ``folder/model.onnx``.

    optimum's feature-extraction config outputs every token's state, not a pooled vector, so this module is
    traced by ``torch.onnx.export`` with the embedding kind's declared inputs, output and dynamic axes; the
    written graph is checked against that interface.
    """
    import torch

    interface = interface_of(TaskKind.EMBEDDING)
    target = folder / "model.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)  # optimum's quantizer reads the architecture from it
    ids = torch.tensor([[0, 10, 11, 12, 2], [0, 13, 2, 1, 1]], dtype=torch.long)
    mask = (ids != 1).long()
    axes = {**interface.inputs, **interface.outputs}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (ids, mask),
            str(target),
            input_names=list(interface.inputs),
            output_names=[interface.output],
            dynamic_axes=axes,
            opset_version=opset or SENTENCE_OPSET,
            dynamo=False,
        )
    inputs, outputs, _ = graph_interface(target)
    interface.check_graph(inputs, outputs, "the exported float32 sentence-embedding graph")
    return target


def export_fp32(model: Any, kind: TaskKind, folder: Path, opset: int | None = None) -> Path:
    """Export ``model`` to ``folder/model.onnx`` (plus ``model.onnx_data`` past protobuf's 2 GB) with dynamic axes.

    The graph's inputs and outputs come from optimum's config for the encoder's architecture and the head's task,
    so a mean-pooled head (not a transformers class) exports as the library's own heads do; that config and the
    written graph must have the kind's declared interface. optimum validates the graph against the model on its
    dummy inputs; parity on real data comes later.
    """
    from optimum.exporters.onnx.convert import export, validate_model_outputs
    from optimum.exporters.tasks import TasksManager

    constructor = TasksManager.get_exporter_config_constructor(
        exporter="onnx", model_type=model.config.model_type, task=OPTIMUM_TASKS[kind], library_name="transformers"
    )
    onnx_config = constructor(model.config)
    interface = interface_of(kind)
    interface.check_onnx_config(onnx_config)
    target = folder / "model.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)  # optimum's quantizer and optimizer read the architecture from it
    _, outputs = export(model, onnx_config, target, opset=opset or onnx_config.DEFAULT_ONNX_OPSET, device="cpu")
    validate_model_outputs(onnx_config, model, target, outputs, atol=onnx_config.ATOL_FOR_VALIDATION)
    inputs, outputs, _ = graph_interface(target)
    interface.check_graph(inputs, outputs, "the exported float32 graph")
    return target


def uses_external_data(model_path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data as tensor_is_external

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return any(tensor_is_external(t) for t in graph.initializer)


def place_model(source: Path, folder: Path) -> Path:
    """Put the graph at ``source`` into ``folder`` as ``model.onnx``, external weights as ``model.onnx_data``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.onnx"
    if not uses_external_data(source):
        shutil.copyfile(source, target)
        return target
    import onnx

    model = onnx.load(str(source), load_external_data=True)
    onnx.save(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=target.name + EXTERNAL_DATA_SUFFIX,
        size_threshold=1024,
    )
    return target
