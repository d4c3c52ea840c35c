"""A bundle's tokenizer and ONNX Runtime session: encode texts, pad a batch to its longest sequence, run it.

Encoding follows training exactly (``xstilts.tasks.encoding`` gives the segments, the bundle's ``tokenizer.json``
its post-processor and ``longest_first`` truncation to the bundle's ``max_length``); ``token_type_ids``, which the
XLM-R tokenizer does not produce, are zeros as in training. :class:`OnnxEngine` is the one interface batching
needs (``infer``); its IO-binding path serves GPU providers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.bundle import MODEL_FILE, TOKENIZER_FILE, BundleManifest, list_bundles, load_manifest
from xstilts.contracts.providers import TENSORRT, uses_gpu
from xstilts.errors import XstiltsError
from xstilts.serve.providers import ProviderPlan, plan_providers, verify
from xstilts.serve.settings import Settings
from xstilts.tasks.encoding import Segments

log = logging.getLogger("xstilts.serve")

MULTIPLE_CHOICE = "multiple_choice"
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# auto variant: precisions in order of preference, on a CPU and on a GPU
CPU_PRECISIONS = ("int8", "fp32", "fp16")
GPU_PRECISIONS = ("fp16", "fp32", "int8")


@dataclass
class EncodedItem:
    """One item's token ids: one sequence for classification, one per choice for multiple choice; ``width`` is
    its longest sequence, ``tokens`` its real (unpadded) token count."""

    sequences: list[list[int]]
    truncated: bool
    width: int = field(init=False)
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.width = max(len(s) for s in self.sequences)
        self.tokens = sum(len(s) for s in self.sequences)


class TextEncoder:
    """``tokenizers`` with the bundle's truncation, no padding (batches are padded when they form)."""

    def __init__(self, tokenizer_file: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        padding = self.tokenizer.padding or {}
        pad_id = padding.get("pad_id")
        if pad_id is None:
            pad_id = self.tokenizer.token_to_id("<pad>")
        self.pad_id = int(pad_id) if pad_id is not None else 0
        self.max_length = max_length
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")

    def encode(self, items: Sequence[Sequence[Segments]]) -> list[EncodedItem]:
        """Encode items (each a list of segment pairs) in one call to the tokenizer (which releases the GIL)."""
        flat = [a if b is None else (a, b) for segments in items for a, b in segments]
        encodings = self.tokenizer.encode_batch(flat)
        out: list[EncodedItem] = []
        position = 0
        for segments in items:
            chunk = encodings[position : position + len(segments)]
            position += len(segments)
            out.append(EncodedItem([e.ids for e in chunk], any(e.overflowing for e in chunk)))
        return out


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


class OnnxEngine:
    """An ONNX Runtime session for one bundle: ``infer`` pads token ids into the graph's inputs and returns logits."""

    def __init__(self, session: Any, manifest: BundleManifest, pad_id: int, provider: str, io_binding: bool) -> None:
        self.session = session
        self.manifest = manifest
        self.pad_id = pad_id
        self.provider = provider
        self.multiple_choice = manifest.kind == MULTIPLE_CHOICE
        self.input_names = [i.name for i in session.get_inputs()]
        unknown = [n for n in self.input_names if n not in KNOWN_INPUTS]
        if unknown or "input_ids" not in self.input_names:
            raise XstiltsError(
                f"{manifest.name}/{manifest.variant}: graph inputs {self.input_names} are not "
                f"input_ids, attention_mask[, token_type_ids]"
            )
        rank = 3 if self.multiple_choice else 2
        for node in session.get_inputs():
            if len(node.shape) != rank:
                raise XstiltsError(
                    f"{manifest.name}/{manifest.variant}: input {node.name} has rank {len(node.shape)}, "
                    f"a {manifest.kind} graph needs {rank}"
                )
        self.output_name = session.get_outputs()[0].name
        for spec in manifest.outputs:
            if spec.name == "logits":
                self.output_name = "logits"
        self.io_binding = io_binding
        self.device = "cuda" if uses_gpu(provider) else "cpu"
        self.max_batch: int | None = None  # a limit of the provider (a TensorRT profile's largest batch)

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
        feeds = {"input_ids": ids}
        if "attention_mask" in self.input_names:
            feeds["attention_mask"] = mask
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def infer(self, sequences: Sequence[Sequence[int]], items: int, choices: int = 1) -> np.ndarray:
        """Logits, [items, num_labels] or [items, choices] for multiple choice."""
        feeds = self.feeds(sequences, items, choices)
        if self.io_binding:
            return self._run_bound(feeds)
        return self.session.run([self.output_name], feeds)[0]

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """IO binding: inputs copied to the device once, as OrtValues; the output written straight to host memory."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.device, 0))
        binding.bind_output(self.output_name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def warm_up(self) -> None:
        """Run a short and a longer batch so that the first requests do not pay for allocations."""
        choices = 2 if self.multiple_choice else 1
        for items, width in ((1, 8), (4, 32)):
            self.infer([[0] + [5] * (width - 2) + [2]] * (items * choices), items, choices)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass
class LoadedModel:
    """A bundle ready to serve: manifest, encoder, engine, and the provider that really runs it."""

    name: str
    folder: Path
    manifest: BundleManifest
    encoder: TextEncoder
    engine: OnnxEngine
    load_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.engine.provider


@dataclass
class PlannedModel:
    """A model chosen at start-up (name, variant, folder, manifest), before its session exists."""

    name: str
    variant: str
    folder: Path
    manifest: BundleManifest


def choose_variant(
    name: str, variants: dict[str, Path], wanted: str, provider: str, allow_failed_parity: bool = False
) -> str:
    """The variant to serve: ``wanted`` if named; for ``auto``, the one made for ``provider`` (the bundle's
    ``execution.providers`` list, best first), then by precision (int8 first on a CPU, fp16 first on a GPU),
    then the variant named after its precision (``int8`` before ``O3``). ``auto`` passes over variants that
    failed the parity gate unless ``allow_failed_parity``."""
    if wanted != "auto":
        if wanted not in variants:
            raise XstiltsError(f"model {name} has no variant {wanted!r}; it has: {', '.join(sorted(variants))}")
        return wanted
    order = GPU_PRECISIONS if uses_gpu(provider) else CPU_PRECISIONS
    ranked = []
    for variant, folder in variants.items():
        try:
            manifest = load_manifest(folder)
        except XstiltsError as exc:
            log.warning("skipping %s/%s: %s", name, variant, exc)
            continue
        if manifest.failed_parity and not allow_failed_parity:
            log.warning("skipping %s/%s: it failed the parity gate", name, variant)
            continue
        meant_for = list(manifest.execution.get("providers") or [])
        fit = meant_for.index(provider) if provider in meant_for else (len(meant_for) if meant_for else 1) + 10
        precision = order.index(manifest.precision) if manifest.precision in order else len(order)
        ranked.append((fit, precision, variant != manifest.precision, variant))
    if not ranked:
        raise XstiltsError(f"model {name} has no valid variant")
    return min(ranked)[-1]


def plan_models(settings: Settings, provider: str) -> list[PlannedModel]:
    """The models to serve and their variants, with manifests read and checked (no session created yet)."""
    bundles = list_bundles(settings.repository)
    if not bundles:
        raise XstiltsError(f"model repository {settings.repository} has no bundles (<name>/<variant>/bundle.json)")
    wanted = settings.model_variants or dict.fromkeys(bundles)
    missing = [name for name in wanted if name not in bundles]
    if missing:
        raise XstiltsError(
            f"model repository {settings.repository} has no model {', '.join(missing)}; it has: {', '.join(bundles)}"
        )
    planned = []
    for name, variant in wanted.items():
        allowed = settings.allow_failed_parity
        chosen = choose_variant(name, bundles[name], variant or settings.variant, provider, allowed)
        folder = bundles[name][chosen]
        manifest = load_manifest(folder)
        if manifest.failed_parity and not allowed:
            drop = manifest.parity.get("accuracy_drop_points")
            raise XstiltsError(
                f"{name}/{chosen} failed the parity gate at export (accuracy drop {drop} points): "
                "serve another variant, or pass --allow-failed-parity"
            )
        planned.append(PlannedModel(name, chosen, folder, manifest))
    return planned


def provider_plan(settings: Settings, planned: PlannedModel | None = None) -> ProviderPlan:
    import onnxruntime as ort

    from xstilts.paths import cache_dir

    if planned is None:
        return plan_providers(settings.providers, ort.get_available_providers(), None, settings.require_gpu)
    return plan_providers(
        settings.providers,
        ort.get_available_providers(),
        planned.manifest.execution,
        settings.require_gpu,
        bundle_folder=planned.folder,
        trt_cache_dir=cache_dir() / "tensorrt" / planned.name / planned.variant,
    )


def load_model(planned: PlannedModel, settings: Settings) -> LoadedModel:
    """Create the session with the planned providers, verify the one that runs, build the encoder, warm up."""
    import onnxruntime as ort

    start = time.perf_counter()
    manifest = planned.manifest
    plan = provider_plan(settings, planned)
    for name, options in plan.providers:
        if name == TENSORRT and "trt_engine_cache_path" in options:
            Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    try:
        session = ort.InferenceSession(
            str(planned.folder / MODEL_FILE),
            sess_options=session_options(settings),
            providers=plan.providers,
        )
    except Exception as exc:  # onnxruntime raises its own types for broken graphs and provider failures
        raise XstiltsError(f"{planned.name}/{planned.variant}: onnxruntime cannot load the model: {exc}") from None
    provider = verify(session.get_providers(), plan, settings.require_gpu, f"{planned.name}/{planned.variant}")
    io_binding = settings.io_binding == "on" or (settings.io_binding == "auto" and uses_gpu(provider))
    encoder = TextEncoder(planned.folder / TOKENIZER_FILE, manifest.max_length)
    engine = OnnxEngine(session, manifest, encoder.pad_id, provider, io_binding)
    if provider == TENSORRT and manifest.tensorrt_profile is not None:
        engine.max_batch = manifest.tensorrt_profile.max_batch
    if settings.warmup:
        engine.warm_up()
    seconds = time.perf_counter() - start
    log.info(
        "loaded %s/%s (%s, %s) on %s%s in %.1f s",
        planned.name,
        planned.variant,
        manifest.kind,
        manifest.precision,
        provider,
        " with IO binding" if io_binding else "",
        seconds,
    )
    return LoadedModel(planned.name, planned.folder, manifest, encoder, engine, seconds)
