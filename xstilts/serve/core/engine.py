"""A bundle's ONNX Runtime session: pad a batch to its longest sequence, run it, and load a planned model.

The feeds are built from the bundle's declared graph interface (``bundle.json`` ``inputs``, written by export
from the graph itself), which must be the kind's graph interface (:mod:`xstilts.contracts.interface`, the
declaration export checks its graphs against too), each input cast to its declared element type;
``token_type_ids``, which the XLM-R tokenizer does not produce, are zeros as in training. :class:`OnnxEngine` is
the one interface batching needs (``infer``); its IO-binding path serves GPU providers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.bundle import MODEL_FILE, TOKENIZER_FILE, BundleManifest
from xstilts.contracts.interface import TOKEN_INPUTS, ZERO_INPUTS, interface_of
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.providers import TENSORRT, uses_gpu
from xstilts.errors import XstiltsError
from xstilts.serve.core.encoder import TextEncoder
from xstilts.serve.core.integrity import verify_bundle
from xstilts.serve.core.providers import plan_for, session_providers, verify
from xstilts.serve.core.repository import PlannedModel
from xstilts.serve.core.shared import shared
from xstilts.serve.core.spans import SpanReader
from xstilts.serve.core.tagging import Tagger
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")

# how each input a graph interface may declare is filled from the padded ids and their mask
FEEDS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    **dict(zip(TOKEN_INPUTS, (lambda ids, mask: ids, lambda ids, mask: mask), strict=True)),
    **{name: (lambda ids, mask: np.zeros_like(ids)) for name in ZERO_INPUTS},
}


def session_options(settings: Settings) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization]
    spin = "1" if settings.spin_wait else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


def check_interface(manifest: BundleManifest, graph_inputs: Sequence[str]) -> None:
    """The declared inputs must be the graph's, and the declaration the kind's graph interface."""
    where = f"{manifest.name}/{manifest.variant}"
    declared = [spec.name for spec in manifest.inputs]
    if sorted(declared) != sorted(graph_inputs):
        raise XstiltsError(f"{where}: bundle.json declares inputs {declared} but the graph has {list(graph_inputs)}")
    try:
        interface_of(manifest.kind).check_graph(manifest.inputs, manifest.outputs, where)
    except XstiltsError as exc:
        raise XstiltsError(f"{exc}: it cannot be served") from None


class OnnxEngine:
    """An ONNX Runtime session for one bundle: ``infer`` pads token ids into the graph's inputs and returns its
    output (logits, or an embedding graph's vectors)."""

    def __init__(self, session: Any, manifest: BundleManifest, pad_id: int, provider: str, io_binding: bool) -> None:
        check_interface(manifest, [node.name for node in session.get_inputs()])
        self.session = session
        self.manifest = manifest
        self.pad_id = pad_id
        self.provider = provider
        self.multiple_choice = manifest.kind is TaskKind.MULTIPLE_CHOICE
        self.inputs = [(spec.name, np.dtype(spec.dtype)) for spec in manifest.inputs]
        self.output_names = list(interface_of(manifest.kind).output_names)
        self.io_binding = io_binding
        self.device = "cuda" if uses_gpu(provider) else "cpu"

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self.inputs]

    def feeds(self, sequences: Sequence[Sequence[int]], items: int, choices: int) -> dict[str, np.ndarray]:
        """Input arrays for ``items`` x ``choices`` sequences (item-major), padded to the longest."""
        width = max(len(s) for s in sequences)
        ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1
        if self.multiple_choice:
            ids = ids.reshape(items, choices, width)
            mask = mask.reshape(items, choices, width)
        return {name: FEEDS[name](ids, mask).astype(dtype, copy=False) for name, dtype in self.inputs}

    def infer(self, sequences: Sequence[Sequence[int]], items: int, choices: int = 1) -> np.ndarray:
        """The graph's output: logits, [items, num_labels] ([items, choices] for multiple choice), or vectors;
        a graph with several outputs (span QA's start and end logits) gives them stacked, [items, outputs, ...]."""
        feeds = self.feeds(sequences, items, choices)
        outputs = self._run_bound(feeds) if self.io_binding else self.session.run(self.output_names, feeds)
        return outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=1)

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """IO binding: inputs copied to the device once, as OrtValues; the output written straight to host memory."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.device, 0))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def warm_up(self) -> None:
        """Run a short and a longer batch so that the first requests do not pay for allocations."""
        choices = 2 if self.multiple_choice else 1
        for items, width in ((1, 8), (4, 32)):
            self.infer([[0] + [5] * (width - 2) + [2]] * (items * choices), items, choices)


@dataclass
class LoadedModel:
    """A bundle ready to serve: manifest, encoder, engine, the provider that really runs it, ``max_batch``, the
    largest batch that provider takes (a TensorRT profile's; None: no limit of its own), for an extractive QA
    model its windows and answer picking (``spans``), for a tagging model its word windows and tag reading
    (``tagger``)."""

    name: str
    folder: Path
    manifest: BundleManifest
    encoder: TextEncoder
    engine: OnnxEngine
    load_seconds: float = 0.0
    max_batch: int | None = None
    spans: SpanReader | None = None
    tagger: Tagger | None = None

    @property
    def provider(self) -> str:
        return self.engine.provider


def load_model(planned: PlannedModel, settings: Settings) -> LoadedModel:
    """Check the bundle's files against bundle.json (``verify_bundles``), create the session with the planned
    providers, verify the one that runs, build the encoder, warm up."""
    import onnxruntime as ort

    from xstilts.paths import cache_dir

    start = time.perf_counter()
    manifest = planned.manifest
    where = f"{planned.name}/{planned.variant}"
    if settings.verify_bundles:
        try:
            verify_bundle(planned.folder, manifest)
        except XstiltsError as exc:
            raise type(exc)(f"{where}: {exc}") from None
    plan = planned.providers or plan_for(settings)
    trt_cache = cache_dir() / "tensorrt" / planned.name / planned.variant
    providers = session_providers(plan, manifest.execution, planned.folder, trt_cache)
    for name, options in providers:
        if name == TENSORRT and "trt_engine_cache_path" in options:
            Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    try:
        session = ort.InferenceSession(
            str(planned.folder / MODEL_FILE), sess_options=session_options(settings), providers=providers
        )
    except Exception as exc:  # onnxruntime raises its own types for broken graphs and provider failures
        raise XstiltsError(f"{where}: onnxruntime cannot load the model: {exc}") from None
    provider = verify(session.get_providers(), plan, settings.require_gpu, where)
    io_binding = settings.io_binding == "on" or (settings.io_binding == "auto" and uses_gpu(provider))
    tokenizer = planned.folder / TOKENIZER_FILE
    encoder = shared(tokenizer, ("encoder", manifest.max_length), lambda: TextEncoder(tokenizer, manifest.max_length))
    spans: SpanReader | None = None
    if manifest.kind is TaskKind.SPAN_QA:
        spans = shared(
            tokenizer, ("spans", manifest.max_length, manifest.span_qa), lambda: SpanReader(tokenizer, manifest)
        )
    tagger: Tagger | None = None
    if manifest.kind is TaskKind.TOKEN_CLASSIFICATION:
        labels = manifest.labels
        tagger = shared(
            tokenizer,
            ("tagger", manifest.max_length, tuple(labels)),
            lambda: Tagger(encoder.tokenizer, manifest.max_length, labels),
        )
    engine = OnnxEngine(session, manifest, encoder.pad_id, provider, io_binding)
    profile = manifest.tensorrt_profile
    max_batch = profile.max_batch if provider == TENSORRT and profile is not None else None
    if settings.warmup:
        engine.warm_up()
    seconds = time.perf_counter() - start
    log.info(
        "loaded %s (%s, %s) on %s%s in %.1f s",
        where,
        manifest.kind,
        manifest.precision,
        provider,
        " with IO binding" if io_binding else "",
        seconds,
    )
    return LoadedModel(planned.name, planned.folder, manifest, encoder, engine, seconds, max_batch, spans, tagger)
