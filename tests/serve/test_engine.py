"""The engine on real bundles: encoding by the training rule, padding per batch, variants, IO binding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.export.encode import Encoder, complete_feeds
from xstilts.serve.core.encoder import TextEncoder
from xstilts.serve.core.engine import load_model
from xstilts.serve.core.repository import choose_variant, plan_models
from xstilts.serve.settings import Settings
from xstilts.tasks import Example
from xstilts.tasks.encoding import example_segments

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
PREMISE = "The man turned on the faucet."
LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60


def loaded(repository: Path, model: str, **settings):
    config = Settings(repository=repository, models=[model], **settings)
    (planned,) = plan_models(config)
    return load_model(planned, config)


@pytest.mark.parametrize(
    ("model", "kind", "examples"),
    [
        (
            "tiny-xnli=fp32",
            TaskKind.PAIR,
            [Example("1", "en", "A man plays a guitar.", "Someone makes music.", 0), Example("2", "de", LONG, "x", 1)],
        ),
        (
            "tiny-xcopa",
            TaskKind.MULTIPLE_CHOICE,
            [
                Example("3", "en", PREMISE, "effect", 0, ("Water flowed.", "The toilet filled.")),
                Example("4", "it", LONG, None, 1, ("a", "b")),
            ],
        ),
    ],
)
def test_serving_encodes_and_scores_like_the_exported_bundle(repository: Path, model, kind, examples) -> None:
    """Token ids and logits equal those of export's encoder (the training rule) on the bundle's own session."""
    served = loaded(repository, model)
    reference = Encoder(served.folder / "tokenizer.json", kind)
    items = [example_segments(kind, e) for e in examples]
    encoded = served.encoder.encode(items)
    for segments, item in zip(items, encoded, strict=True):
        assert item.sequences == reference.token_ids(segments)
    assert [e.truncated for e in encoded] == [False, True]
    assert max(len(s) for s in encoded[1].sequences) == served.manifest.max_length
    feeds = complete_feeds(reference.feeds(examples), served.engine.input_names)
    expected = served.engine.session.run(None, feeds)[0]
    choices = len(examples[0].choices) or 1
    got = served.engine.infer([s for e in encoded for s in e.sequences], len(examples), choices)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_an_items_logits_do_not_depend_on_its_batch(repository: Path) -> None:
    served = loaded(repository, "tiny-xnli=fp32")
    short, long = served.encoder.encode([[("Short.", "Tiny.")], [(LONG, "Long one.")]])
    alone = served.engine.infer(short.sequences, 1)
    padded = served.engine.infer(short.sequences + long.sequences, 2)
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)


def test_io_binding_gives_the_same_logits(repository: Path) -> None:
    plain = loaded(repository, "tiny-xnli=fp32", io_binding="off")
    bound = loaded(repository, "tiny-xnli=fp32", io_binding="on")
    assert bound.engine.io_binding and not plain.engine.io_binding
    items = plain.encoder.encode([[("One text.", "Another.")], [("Two", None)]])
    sequences = [s for i in items for s in i.sequences]
    np.testing.assert_allclose(bound.engine.infer(sequences, 2), plain.engine.infer(sequences, 2), atol=1e-6)


def test_the_tokenizer_pads_nothing_and_truncates_to_max_length(repository: Path) -> None:
    encoder = TextEncoder(repository / "tiny-xnli" / "fp32" / "tokenizer.json", max_length=16)
    short, long = encoder.encode([[("a", None)], [(LONG, LONG)]])
    assert len(short.sequences[0]) < 16 and not short.truncated
    assert len(long.sequences[0]) == 16 and long.truncated
    assert encoder.pad_id == 1  # XLM-R's <pad>


def test_auto_variant_fits_the_provider(repository: Path) -> None:
    variants = {"fp32": repository / "tiny-xnli" / "fp32", "int8": repository / "tiny-xnli" / "int8"}
    assert choose_variant("tiny-xnli", variants, "auto", CPU) == "int8"
    assert choose_variant("tiny-xnli", variants, "auto", CUDA) == "fp32"  # int8 is made for CPUs only
    assert choose_variant("tiny-xnli", variants, "fp32", CPU) == "fp32"
    with pytest.raises(XstiltsError, match="has no variant 'fp16'; it has: fp32, int8"):
        choose_variant("tiny-xnli", variants, "fp16", CPU)


def test_plan_names_what_is_missing(repository: Path, tmp_path: Path) -> None:
    planned = plan_models(Settings(repository=repository))
    assert {(p.name, p.variant) for p in planned} == {("tiny-xnli", "int8"), ("tiny-xcopa", "fp32")}
    assert {p.name: p.variants for p in planned} == {"tiny-xnli": ["fp32", "int8"], "tiny-xcopa": ["fp32"]}
    assert planned[0].providers is planned[1].providers and planned[0].providers.names == [CPU]  # planned once
    chosen = plan_models(Settings(repository=repository, models=["tiny-xnli=fp32"]))
    assert [(p.name, p.variant) for p in chosen] == [("tiny-xnli", "fp32")]
    with pytest.raises(XstiltsError, match="has no model nope; it has: tiny-xcopa, tiny-xnli"):
        plan_models(Settings(repository=repository, models=["nope"]))
    with pytest.raises(XstiltsError, match="has no bundles"):
        plan_models(Settings(repository=tmp_path))
    with pytest.raises(XstiltsError, match="does not exist"):
        plan_models(Settings(repository=tmp_path / "missing"))


def test_a_variant_that_failed_the_parity_gate_is_served_only_when_allowed(repository: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repository"
    shutil.copytree(repository / "tiny-xnli", copy / "tiny-xnli")
    manifest_path = copy / "tiny-xnli" / "int8" / "bundle.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["parity"].update(status="failed", passed=False, accuracy_drop_points=3.5, kept_despite_failure=True)
    manifest_path.write_text(json.dumps(manifest))

    assert [p.variant for p in plan_models(Settings(repository=copy))] == ["fp32"]  # auto passes over it
    with pytest.raises(XstiltsError, match="tiny-xnli/int8 failed the parity gate .*3.5 points.*--allow-failed-parity"):
        plan_models(Settings(repository=copy, models=["tiny-xnli=int8"]))
    allowed = Settings(repository=copy, models=["tiny-xnli=int8"], allow_failed_parity=True)
    assert [p.variant for p in plan_models(allowed)] == ["int8"]


def test_the_feeds_follow_the_declared_interface(repository: Path, tmp_path: Path) -> None:
    """The engine feeds what bundle.json declares, and refuses a bundle whose declaration is not its graph's."""
    served = loaded(repository, "tiny-xnli=fp32", warmup=False)
    declared = [(spec.name, spec.dtype) for spec in served.manifest.inputs]
    feeds = served.engine.feeds([[0, 5, 2], [0, 2]], 2, 1)
    assert [(name, str(array.dtype)) for name, array in feeds.items()] == declared
    assert feeds["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert feeds["input_ids"][1].tolist() == [0, 2, served.encoder.pad_id]

    copy = tmp_path / "repository" / "tiny-xnli" / "fp32"
    shutil.copytree(repository / "tiny-xnli" / "fp32", copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["inputs"] = [spec for spec in manifest["inputs"] if spec["name"] != "attention_mask"]
    (copy / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(XstiltsError, match="bundle.json declares inputs .* but the graph has"):
        loaded(tmp_path / "repository", "tiny-xnli=fp32", warmup=False)
