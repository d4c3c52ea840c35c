"""The server's own view of a scenario: ``/metrics`` scraped before and after, and the difference.

Histograms give means from ``_sum`` and ``_count`` deltas: time an item waited in the queue against time a
batch took in ONNX Runtime, sequences per batch, tokenization time, and the server-side request latency (which
leaves out the network and the client). A server without ``/metrics`` (the naive reference) gives None.
"""

from __future__ import annotations

from xstilts.contracts.results import ServerView

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

HISTOGRAMS = {
    "request": "xstilts_request_duration_seconds",
    "queue": "xstilts_queue_duration_seconds",
    "tokenization": "xstilts_tokenization_duration_seconds",
    "inference": "xstilts_inference_duration_seconds",
    "batch_size": "xstilts_batch_size",
}


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by sample name and sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def scrape(url: str, api_key: str | None = None, timeout: float = 10.0) -> Samples | None:
    """``GET /metrics``, parsed; None when the server has no Prometheus metrics."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or "xstilts_" not in response.text:
        return None
    return parse(response.text)


def total(samples: Samples, name: str, **match: str) -> float:
    """The sum of ``name``'s samples whose labels include ``match``."""
    found = 0.0
    for (sample_name, labels), value in samples.items():
        if sample_name != name:
            continue
        have = dict(labels)
        if all(have.get(k) == v for k, v in match.items()):
            found += value
    return found


def model_info(samples: Samples, model: str) -> dict[str, str] | None:
    for (name, labels), value in samples.items():
        if name == "xstilts_model_info" and dict(labels).get("model") == model and value:
            return {k: v for k, v in labels if k != "model"}
    return None


def delta(before: Samples | None, after: Samples | None, model: str) -> ServerView | None:
    """What happened on the server for ``model`` between two scrapes."""
    if before is None or after is None:
        return None

    def change(name: str, **match: str) -> float:
        return total(after, name, model=model, **match) - total(before, name, model=model, **match)

    statuses: dict[str, int] = {}
    for (name, labels), _ in after.items():
        have = dict(labels)
        if name == "xstilts_requests_total" and have.get("model") == model:
            count = int(round(change(name, status=have["status"], endpoint=have["endpoint"])))
            if count:
                statuses[have["status"]] = statuses.get(have["status"], 0) + count
    out: dict[str, object] = {"requests": statuses, "info": model_info(after, model)}
    for key, name in HISTOGRAMS.items():
        count = change(f"{name}_count")
        seconds = change(f"{name}_sum")
        out["batches" if key == "batch_size" else f"{key}_count"] = int(round(count))
        out[f"mean_{key}"] = seconds / count if count else None
    return ServerView(
        **out,  # type: ignore[arg-type]
        tokens=int(round(change("xstilts_tokens_total"))),
        queue_depth_after=total(after, "xstilts_queue_depth", model=model),
    )
