"""SQuAD-format JSON (XQuAD, MLQA, TyDiQA-GoldP) to extractive QA examples, checked as it is read.

One example per question: ``text_a`` the paragraph's context, ``text_b`` the question, ``answers`` every gold
(text, character start). The item id is the question's id, shared by the translations of an item (XQuAD, MLQA);
a file whose ids repeat (TyDiQA-GoldP's English train file numbers its questions per article) numbers the
repeats, so that every item stays distinct.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.tasks.types import Example


def _fail(path: Path, where: str, problem: str) -> XstiltsError:
    return XstiltsError(f"{path}: {where}: {problem} (expected SQuAD format)")


def _load(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise XstiltsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise _fail(path, "top level", "no 'data' list of articles")
    return articles


def _answers(path: Path, where: str, context: str, qa: dict) -> tuple[tuple[str, int], ...]:
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers:
        raise _fail(path, where, "no answers")
    out = []
    for answer in answers:
        text, start = (answer.get("text"), answer.get("answer_start")) if isinstance(answer, dict) else (None, None)
        if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
            raise _fail(path, where, f"an answer needs a text and an integer answer_start, got {answer!r}")
        if context[start : start + len(text)] != text:
            found = context[start : start + len(text)]
            raise _fail(path, where, f"answer {text!r} is not at character {start} of the context ({found!r} is)")
        out.append((text, start))
    return tuple(out)


def _questions(path: Path) -> list[tuple[str, str, str, tuple[tuple[str, int], ...]]]:
    """(question id, context, question, answers) of every question of a file, in order."""
    out = []
    for a, article in enumerate(_load(path)):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise _fail(path, f"article {a}", "no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"article {a} paragraph {p}"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not isinstance(qas, list):
                raise _fail(path, where, "a paragraph needs a 'context' string and a 'qas' list")
            for q, qa in enumerate(qas):
                at = f"{where} question {q}"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or "id" not in qa:
                    raise _fail(path, at, "a question needs an 'id' and a 'question' string")
                out.append((str(qa["id"]), context, qa["question"], _answers(path, at, context, qa)))
    return out


def squad(prefix: str):
    """SQuAD-format files, each question one example with ids ``{prefix}/{question id}``."""

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for path in paths:
            questions = _questions(path)
            repeated = {qid for qid, n in Counter(q[0] for q in questions).items() if n > 1}
            seen: Counter[str] = Counter()
            for qid, context, question, answers in questions:
                seen[qid] += 1
                uid = f"{prefix}/{qid}/{seen[qid]}" if qid in repeated else f"{prefix}/{qid}"
                examples.append(Example(uid, language, context, question, 0, answers=answers))
        return examples

    return parse
