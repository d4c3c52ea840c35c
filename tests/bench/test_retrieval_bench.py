"""Retrieval accuracy through the live API: the vectors a real server answers are the bundle's own, top-1 per
language is computed from them, and the pass agrees with what ``bundle.json`` recorded; the naive PyTorch
embedding server answers the same vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import EMBEDDING_LANGUAGES, EMBEDDING_PARITY_PAIRS
from xstilts.bench import retrieval
from xstilts.bench.servers import ServerProcess, naive_embedding_server, running, xstilts_server
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.evaluation import EvaluationSample, load_evaluation_sample
from xstilts.retrieval.search import tatoeba_accuracy


@pytest.fixture(scope="module")
def embed_server(embedding_repository: Path, tmp_path_factory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("embed-bench") / "serve.log"
    with running(xstilts_server(embedding_repository, "tiny-embed=fp32", log), timeout_s=120) as started:
        yield started


@pytest.fixture(scope="module")
def premises(embedding_repository: Path, data_dir: Path) -> EvaluationSample:
    """The pairs the bundle's parity gate scored: the languages it recorded, the same seeded items."""
    manifest = load_manifest(embedding_repository / "tiny-embed" / "fp32")
    languages = retrieval.sample_languages("xnli_premises", data_dir, None, manifest)
    assert languages == list(EMBEDDING_LANGUAGES)
    return load_evaluation_sample("xnli_premises", data_dir, languages, EMBEDDING_PARITY_PAIRS, 0)


def test_the_api_pass_scores_the_bundles_own_vectors(embed_server, embedding_repository, premises):
    folder = embedding_repository / "tiny-embed" / "fp32"
    texts = retrieval.sample_texts(premises)
    # each English sentence once, shared by both languages' items
    assert len(texts) == len({e.text_b for ex in premises.examples.values() for e in ex}) + sum(
        len(ex) for ex in premises.examples.values()
    )
    served, stats = retrieval.api_embeddings(embed_server.url, "tiny-embed", texts, batch_items=7)
    assert stats.items == len(texts) and stats.requests == -(-len(texts) // 7)
    direct = retrieval.in_process_embeddings(folder, texts, batch_items=7)
    np.testing.assert_allclose(served, direct, atol=1e-5)

    result = retrieval.run_retrieval_accuracy(embed_server.url, "tiny-embed", premises, load_manifest(folder))
    assert result.metric == retrieval.METRIC
    for lang, examples in premises.examples.items():
        rows = {t: i for i, t in enumerate(texts)}
        expected = tatoeba_accuracy(
            direct[[rows[e.text_a] for e in examples]], direct[[rows[e.text_b] for e in examples]]
        )
        assert result.languages[lang].accuracy == pytest.approx(expected)
        assert result.languages[lang].examples == len(examples)
    parity = result.parity
    assert parity.available and parity.same_items and not parity.flagged, parity
    recorded = load_manifest(folder).parity["languages"]
    for lang, compared in parity.languages.items():
        assert compared.bundle == pytest.approx(recorded[lang]["accuracy"])


def test_a_shuffled_side_is_scored_as_a_miss(embed_server, embedding_repository, premises):
    """Top-1 is computed against each item's own counterpart: vectors matched to the wrong rows score lower."""
    texts = retrieval.sample_texts(premises)
    vectors, _ = retrieval.api_embeddings(embed_server.url, "tiny-embed", texts)
    right = retrieval.top1_per_language(premises, texts, vectors)
    wrong = retrieval.top1_per_language(premises, texts, np.roll(vectors, 1, axis=0))
    assert sum(v.correct for v in wrong.values()) < sum(v.correct for v in right.values())


def test_the_naive_embedding_server_answers_the_bundles_vectors(embedding_repository, premises, tmp_path):
    folder = embedding_repository / "tiny-embed" / "fp32"
    texts = retrieval.sample_texts(premises)[:12]
    process = naive_embedding_server(folder, "tiny-embed", tmp_path / "naive.log", threads=1)
    with running(process, timeout_s=180) as started:
        naive, _ = retrieval.api_embeddings(started.url, "tiny-embed", texts, batch_items=5)
    direct = retrieval.in_process_embeddings(folder, texts)
    cosines = np.sum(naive * direct, axis=1) / np.linalg.norm(naive, axis=1) / np.linalg.norm(direct, axis=1)
    assert cosines.min() > 0.9999, cosines


def test_another_retrieval_task_is_scored_but_not_held_to_the_bundles_record(
    embed_server, embedding_repository, data_dir
):
    """A vector model is benched on any retrieval task; its export record (XNLI premises) says nothing of Tatoeba."""
    sample = load_evaluation_sample("tatoeba", data_dir, ["deu"], 10, 0)
    manifest = load_manifest(embedding_repository / "tiny-embed" / "fp32")
    result = retrieval.run_retrieval_accuracy(embed_server.url, "tiny-embed", sample, manifest)
    assert result.languages["deu"].examples == 10
    assert not result.parity.available and "recorded xnli_premises, not tatoeba" in result.parity.reason
