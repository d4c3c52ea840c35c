"""Accuracy through the API equals accuracy in-process on the same inputs, and matches what export recorded."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.bench import accuracy
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.results import LanguageAccuracy


@pytest.mark.parametrize("model", ["tiny-xnli", "tiny-xcopa"])
def test_api_predictions_equal_in_process(server, tiny_repository, xnli_sample, xcopa_sample, model):
    sample = xnli_sample if model == "tiny-xnli" else xcopa_sample
    served, served_probs, stats = accuracy.api_predictions(server.url, model, sample, batch_items=5)
    local, local_probs = accuracy.in_process_predictions(tiny_repository / model / "fp32", sample, batch_items=5)
    assert served == local
    for lang in sample.examples:
        np.testing.assert_allclose(served_probs[lang], local_probs[lang], atol=1e-5)
    assert accuracy.accuracy_per_language(sample, served) == accuracy.accuracy_per_language(sample, local)
    assert stats.items == sample.size and stats.requests == sum(-(-len(e) // 5) for e in sample.examples.values())


def test_accuracy_agrees_with_the_bundle_on_the_same_items(server, tiny_repository, xnli_sample):
    info = accuracy.served_model(server.url, "tiny-xnli")
    assert info["variant"] == "fp32"
    manifest = accuracy.bundle_manifest(tiny_repository, "tiny-xnli", info["variant"])
    result = accuracy.run_accuracy(server.url, "tiny-xnli", xnli_sample, manifest)
    parity = result.parity
    assert parity.available and parity.same_items, parity
    recorded = manifest.parity["languages"]
    for lang, value in result.languages.items():
        assert value.accuracy == pytest.approx(recorded[lang]["accuracy"], abs=1 / 8 + 1e-9)
    assert parity.agrees, parity.flagged


def test_a_difference_is_flagged(tiny_repository, xnli_sample):
    manifest = load_manifest(tiny_repository / "tiny-xnli" / "fp32")
    recorded = manifest.parity["languages"]
    # answers that are right on every item of English and as recorded elsewhere
    measured = {
        lang: LanguageAccuracy(v["examples"], 0, 1.0 if lang == "en" else v["accuracy"]) for lang, v in recorded.items()
    }
    if recorded["en"]["accuracy"] > 0.75:
        pytest.skip("the tiny model is already nearly right in English")
    result = accuracy.compare_with_parity(xnli_sample, measured, manifest)
    assert result.flagged == ["en"] and not result.agrees
