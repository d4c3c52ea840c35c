"""Fixtures for the tagging tests: the real me5-small tokenizer and real PAN-X / UD-POS sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foundation.conftest import me5_folder  # noqa: F401  (the converted me5-small, for its tokenizer)
from xstilts.tasks import Example, get_task, load_examples, sample


@pytest.fixture(scope="session")
def me5_tokenizer(me5_folder):  # noqa: F811
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(me5_folder) / "tokenizer.json"))


@pytest.fixture(scope="session")
def tagged_sentences(data_dir) -> dict[str, list[Example]]:
    """A seeded 40 dev sentences of each language of PAN-X and UD-POS, keyed ``task/language``."""
    out = {}
    for name in ("panx", "udpos"):
        task = get_task(name)
        for lang in task.splits["dev"].languages:
            out[f"{name}/{lang}"] = sample(load_examples(task, "dev", lang, data_dir), 40, seed=0)
    return out
