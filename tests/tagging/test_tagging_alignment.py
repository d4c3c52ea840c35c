"""First-sub-word labels round-trip to words on real PAN-X and UD-POS sentences with me5-small's tokenizer, and
long sentences are split into windows, never truncated."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.tagging.alignment import IGNORE, WordTokenizer, window_labels, word_logits
from xstilts.tasks import get_task

pytestmark = pytest.mark.slow  # the real me5-small tokenizer


def round_trip(tokenizer, examples, max_length: int) -> list[list[str]]:
    """Tags read back per word from one-hot logits placed where the training labels are (one task's examples)."""
    tags = get_task(examples[0].uid.split("-", 1)[0]).labels
    words = WordTokenizer(tokenizer, max_length)
    out = []
    for example, windows in zip(examples, words.windows([e.words for e in examples]), strict=True):
        assert [w for window in windows for w in window.words] == list(range(len(example.words)))
        logits = []
        for window in windows:
            assert len(window.ids) <= max_length
            labels = window_labels(window, [tags.index(t) for t in example.tags])
            onehot = np.zeros((len(window.ids), len(tags)), dtype=np.float32)
            for position, label in enumerate(labels):
                if label != IGNORE:
                    onehot[position, label] = 1.0
            logits.append(onehot)
        out.append([tags[i] for i in word_logits(windows, logits, len(example.words), len(tags)).argmax(-1)])
    return out


def test_labels_round_trip_on_real_sentences(me5_tokenizer, tagged_sentences):
    for key, examples in tagged_sentences.items():
        assert round_trip(me5_tokenizer, examples, 128) == [list(e.tags) for e in examples], key


def test_long_sentences_are_split_into_windows(me5_tokenizer, tagged_sentences):
    """At a window of 16 tokens most sentences need several windows; every word still gets its own tag back."""
    for key in ("udpos/de", "panx/ja"):
        examples = tagged_sentences[key]
        windows = WordTokenizer(me5_tokenizer, 16).windows([e.words for e in examples])
        assert sum(len(w) > 1 for w in windows) > len(examples) // 3, key
        assert round_trip(me5_tokenizer, examples, 16) == [list(e.tags) for e in examples], key


def test_labels_sit_on_first_sub_words_only(me5_tokenizer):
    window = WordTokenizer(me5_tokenizer, 32).windows([["Saunders", "Lindström", "東"]])[0][0]
    labels = window_labels(window, [1, 2, 3])
    encoding = me5_tokenizer.encode(["Saunders", "Lindström", "東"], is_pretokenized=True)
    assert window.ids == encoding.ids  # the same ids as the tokenizer gives the sentence whole
    firsts = [encoding.word_ids.index(w) for w in range(3)]
    assert [labels[p] for p in firsts] == [1, 2, 3]
    assert all(label == IGNORE for p, label in enumerate(labels) if p not in firsts)
    assert len(encoding.ids) > 5  # there were other sub-words to ignore


def test_caller_tokenizer_settings_do_not_leak(me5_tokenizer):
    """The server's tokenizer truncates; the word tokenizer reads a private, untruncated copy."""
    from tokenizers import Tokenizer

    truncating = Tokenizer.from_str(me5_tokenizer.to_str())
    truncating.enable_truncation(8)
    windows = WordTokenizer(truncating, 64).windows([["word"] * 30])[0]
    assert len(windows) == 1 and len(windows[0].first_tokens) == 30
    assert truncating.truncation["max_length"] == 8
