"""``export_span_qa``: an extractive QA checkpoint into ``span_qa`` bundles, every variant gated, all or nothing.

The graph is optimum's ``question-answering`` export: ``input_ids`` and ``attention_mask`` [batch, sequence] in,
``start_logits`` and ``end_logits`` [batch, sequence] out, both axes dynamic. ``bundle.json`` records the max
length, the doc stride the checkpoint was trained with and the longest answer, so a server windows long
contexts and picks spans as the gate did (:mod:`xstilts.export.span_parity`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from xstilts.atomic import staged_dir
from xstilts.contracts.bundle import TOKENIZER_FILE, TensorRTProfile
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.span import SpanSpec
from xstilts.errors import XstiltsError
from xstilts.export.encode import configure_tokenizer
from xstilts.export.hardware import cpu_int8_target
from xstilts.export.pipeline import VariantWriter, _load_model, new_bundle_folder, write_variants
from xstilts.export.span_parity import SpanGate, check_windows, reference_span_logits, sample_windows, window_batches
from xstilts.export.variants import TRT_BATCH, BuildContext, resolve_variants
from xstilts.paths import resolve_data_dir
from xstilts.qa.postprocess import MAX_ANSWER_LENGTH
from xstilts.qa.windows import Windower

log = logging.getLogger("xstilts.export")

SPAN_VARIANTS = ("fp32", "int8")  # the variants a span QA bundle is tested in


def export_span_qa(
    checkpoint: Path,
    info: CheckpointInfo,
    repository: Path,
    name: str,
    variants: Sequence[str] | str,
    *,
    data_dir: Path | None = None,
    parity_examples: int = 200,
    max_accuracy_drop: float = 1.0,
    keep_failed: bool = False,
    seed: int = 0,
    opset: int | None = None,
    int8_target: str | None = None,
    per_channel: bool = True,
) -> list[Path]:
    """Write ``repository/name/<variant>/`` span QA bundles and return those folders.

    Each variant answers ``parity_examples`` items per language of the task's evaluation split beside the
    PyTorch checkpoint; one whose average F1 drops more than ``max_accuracy_drop`` points is rejected (then
    nothing is written) unless ``keep_failed``.
    """
    from transformers import AutoTokenizer

    from xstilts.export.onnx_export import export_fp32
    from xstilts.qa.evaluate import doc_stride_of

    target = new_bundle_folder(repository, name)
    chosen = resolve_variants(variants)
    refused = [v.name for v in chosen if v.name not in SPAN_VARIANTS]
    if refused:
        raise XstiltsError(f"extractive QA bundles come as {', '.join(SPAN_VARIANTS)}, not {', '.join(refused)}")
    spec = SpanSpec(doc_stride=doc_stride_of(info), max_answer_length=MAX_ANSWER_LENGTH)
    sample = load_evaluation_sample(info.task, resolve_data_dir(data_dir), info.languages, parity_examples, seed)
    hf_tokenizer = AutoTokenizer.from_pretrained(checkpoint, fix_mistral_regex=False)
    if hf_tokenizer.pad_token_id is None:
        raise XstiltsError(f"{checkpoint}: the tokenizer has no padding token")
    with staged_dir(target) as stage:
        work = stage / ".work"
        model = _load_model(checkpoint, TaskKind.SPAN_QA)
        log.info("exporting the float32 question-answering graph")
        export_fp32(model, TaskKind.SPAN_QA, work / "onnx", opset)
        tokenizer = work / TOKENIZER_FILE
        configure_tokenizer(
            checkpoint / TOKENIZER_FILE, tokenizer, info.max_length, hf_tokenizer.pad_token_id, hf_tokenizer.pad_token
        )
        windows = sample_windows(Windower(_bundle_tokenizer(tokenizer), info.max_length, spec.doc_stride), sample)
        expected = sample_windows(Windower(hf_tokenizer, info.max_length, spec.doc_stride), sample)
        checked = check_windows(expected, windows)
        feeds = {lang: window_batches(w, hf_tokenizer.pad_token_id) for lang, w in windows.items()}
        log.info("reference: the PyTorch checkpoint on %d items (%d windows)", sample.size, checked)
        reference = reference_span_logits(model, feeds, windows)
        gate = SpanGate(sample, spec, windows, feeds, reference, max_accuracy_drop, checked)
        context = BuildContext(work / "onnx", int8_target or cpu_int8_target(), per_channel, _no_calibration)
        profile = TensorRTProfile(batch=TRT_BATCH, sequence=(1, min(128, info.max_length), info.max_length))
        writer = VariantWriter(checkpoint, info, name, profile, context, gate, tokenizer, keep_failed, span=spec)
        write_variants(writer, chosen, stage)
        shutil.rmtree(work)
    return [target / v.name for v in chosen]


def _bundle_tokenizer(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def _no_calibration() -> list:
    raise XstiltsError("extractive QA bundles have no TensorRT int8 variant to calibrate")
