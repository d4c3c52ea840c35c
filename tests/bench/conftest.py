"""A real ``xstilts serve`` of the tiny repository (tiny-xnli fp32 and tiny-xcopa), started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import embedding_repository  # noqa: F401  (tiny-embed fp32 and int8)
from xstilts.bench.servers import ServerProcess, running, xstilts_server
from xstilts.contracts.evaluation import EvaluationSample, load_evaluation_sample

SERVED = "tiny-xnli=fp32,tiny-xcopa=fp32"


@pytest.fixture(scope="module")
def server(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = xstilts_server(tiny_repository, SERVED, tmp_path_factory.mktemp("server") / "serve.log")
    with running(process, timeout_s=120) as started:
        yield started
    assert process.process.poll() is not None, "the server outlived its fixture"


@pytest.fixture(scope="session")
def xnli_sample(data_dir: Path) -> EvaluationSample:
    """The items export's parity check scored for the tiny bundles: 8 per language, seed 0."""
    return load_evaluation_sample("xnli", data_dir, None, 8, 0)


@pytest.fixture(scope="session")
def xcopa_sample(data_dir: Path) -> EvaluationSample:
    return load_evaluation_sample("xcopa", data_dir, None, 6, 1)
