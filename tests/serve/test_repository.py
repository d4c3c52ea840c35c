"""Model control (Triton's repository extension) against ``xstilts serve`` subprocesses on 127.0.0.1: the index,
loads that switch variants, unloads, reloads under load that fail no request, failed loads that leave the old model
serving, the API key, the stock ``tritonclient.http`` client, and polling."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ServerProcess, metric_samples, metric_total
from tests.serve.test_integrity import flip_middle, get, post, wait_for
from xstilts.contracts.bundle import MODEL_FILE

KEY = "repository-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAIR = {"inputs": [{"text": "Ein Mann spielt Gitarre.", "text_pair": "Jemand macht Musik."}]}
CHOICE = {"inputs": [{"premise": "The glass fell.", "choices": ["It broke.", "It sang."]}]}


def index_of(url: str, body: dict | None = None) -> dict[tuple[str, str], dict]:
    response = post(f"{url}/v2/repository/index", json=body, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return {(e["name"], e["version"]): e for e in response.json()}


def load(url: str, name: str, body: dict | None = None) -> httpx.Response:
    return post(f"{url}/v2/repository/models/{name}/load", json=body, headers=AUTH, timeout=120)


def served_variant(url: str, name: str) -> str:
    return get(f"{url}/v1/models/{name}", headers=AUTH).json()["variant"]


@pytest.fixture(scope="module")
def explicit(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """A server with model control explicit and an API key over a copy of the tiny repository, tiny-xnli's fp32
    loaded at start (tiny-xcopa only listed)."""
    root = tmp_path_factory.mktemp("explicit")
    copy = root / "repository"
    shutil.copytree(repository, copy)
    env = {"XSTILTS_MODEL_CONTROL": "explicit", "XSTILTS_MODELS": "tiny-xnli=fp32", "XSTILTS_API_KEY": KEY}
    process = ServerProcess(copy, root / "server.log", env).start()
    yield process, copy
    assert process.stop() == 0, process.logs()


def test_the_index_lists_every_folder_and_variant(explicit) -> None:
    server, _ = explicit
    index = index_of(server.url)
    assert set(index) == {("tiny-xnli", "fp32"), ("tiny-xnli", "int8"), ("tiny-xcopa", "fp32")}
    assert (index[("tiny-xnli", "fp32")]["state"], index[("tiny-xnli", "fp32")]["reason"]) == ("READY", "")
    assert index[("tiny-xnli", "int8")] == {"name": "tiny-xnli", "version": "int8", "state": "UNAVAILABLE",
                                            "reason": "not loaded"}  # fmt: skip
    assert index[("tiny-xcopa", "fp32")]["state"] == "UNAVAILABLE"
    assert set(index_of(server.url, {"ready": True})) == {("tiny-xnli", "fp32")}
    empty = post(f"{server.url}/v2/repository/index", headers=AUTH)  # Triton's clients send no body
    assert empty.status_code == 200 and len(empty.json()) == 3
    extensions = get(f"{server.url}/v2", headers=AUTH).json()["extensions"]
    assert "model_repository" in extensions


def test_the_api_key_guards_the_repository_api(explicit) -> None:
    server, _ = explicit
    for path in ("/v2/repository/index", "/v2/repository/models/tiny-xcopa/load", "/v2/repository/models/x/unload"):
        response = post(server.url + path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401 and response.json()["error_type"] == "unauthorized", path
    assert get(f"{server.url}/v1/models/tiny-xcopa", headers=AUTH).status_code == 404  # nothing loaded


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "message"),
    [
        ("/models/nope/load", None, 404, "not_found", "the repository has no model 'nope'"),
        ("/models/tiny-xcopa/load", {"parameters": {"variant": "int4"}}, 404, "not_found", "no variant 'int4'"),
        ("/models/tiny-xcopa/load", {"parameters": {"config": "{}"}}, 422, "validation", "parameters.config"),
        ("/models/tiny-xcopa/load", {"parameters": {"variant": 8}}, 422, "validation", "parameters.variant"),
        ("/models/nope/unload", None, 404, "not_found", "the repository has no model 'nope'"),
        ("/index", {"ready": "maybe"}, 422, "validation", "ready"),
        ("/index", "[", 400, "bad_request", "not valid JSON"),
    ],
)
def test_bad_requests_get_clear_errors(explicit, path, body, status, kind, message) -> None:
    server, _ = explicit
    url = f"{server.url}/v2/repository{path}"
    if isinstance(body, str):
        response = post(url, content=body, headers={**AUTH, "content-type": "application/json"})
    else:
        response = post(url, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert response.json()["error_type"] == kind and message in response.json()["error"], response.text


def test_tritonclient_loads_switches_and_unloads(explicit) -> None:
    tritonclient = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    server, _ = explicit
    triton = tritonclient.InferenceServerClient(server.url.removeprefix("http://"))
    index = {(e["name"], e["version"]): e["state"] for e in triton.get_model_repository_index(headers=AUTH)}
    assert index[("tiny-xcopa", "fp32")] == "UNAVAILABLE"

    triton.load_model("tiny-xcopa", headers=AUTH)
    assert triton.is_model_ready("tiny-xcopa", headers=AUTH) and triton.is_server_ready(headers=AUTH)
    answer = post(f"{server.url}/v1/models/tiny-xcopa/predict", json=CHOICE, headers=AUTH)
    assert answer.status_code == 200, answer.text

    # curl's way: name the variant; the model switches, and so does what the metrics say is loaded
    switched = load(server.url, "tiny-xnli", {"parameters": {"variant": "int8"}})
    assert switched.status_code == 200, switched.text
    assert switched.json() == {"name": "tiny-xnli", "version": "int8", "state": "READY", "reason": ""}
    assert served_variant(server.url, "tiny-xnli") == "int8"
    reply = post(f"{server.url}/v1/models/tiny-xnli/predict", json=PAIR, headers=AUTH).json()
    assert reply["variant"] == "int8"
    info = metric_samples(get(f"{server.url}/metrics").text, "xstilts_model_info")
    assert sorted(dict(labels)["variant"] for labels in info if dict(labels)["model"] == "tiny-xnli") == ["int8"]

    triton.unload_model("tiny-xcopa", headers=AUTH)
    assert not triton.is_model_ready("tiny-xcopa", headers=AUTH)
    gone = post(f"{server.url}/v1/models/tiny-xcopa/predict", json=CHOICE, headers=AUTH)
    assert gone.status_code == 503 and "unloaded" in gone.json()["error"]
    assert triton.is_server_ready(headers=AUTH), "an unloaded model does not make the server unready"
    index = {(e["name"], e["version"]): e for e in triton.get_model_repository_index(headers=AUTH)}
    assert (index[("tiny-xcopa", "fp32")]["state"], index[("tiny-xcopa", "fp32")]["reason"]) == (
        "UNAVAILABLE",
        "unloaded",
    )
    info = metric_samples(get(f"{server.url}/metrics").text, "xstilts_model_info")
    assert all(dict(labels)["model"] != "tiny-xcopa" for labels in info)
    with pytest.raises(InferenceServerException, match="no model 'nope'"):
        triton.load_model("nope", headers=AUTH)

    back = load(server.url, "tiny-xnli", {"parameters": {"variant": "fp32"}})
    assert back.status_code == 200 and served_variant(server.url, "tiny-xnli") == "fp32"


def test_a_failed_load_leaves_the_old_model_serving(explicit) -> None:
    server, copy = explicit
    assert load(server.url, "tiny-xnli", {"parameters": {"variant": "fp32"}}).status_code == 200
    model = copy / "tiny-xnli" / "int8" / MODEL_FILE
    original = model.read_bytes()
    flip_middle(model)
    try:
        failed = load(server.url, "tiny-xnli", {"parameters": {"variant": "int8"}})
        assert failed.status_code == 503 and failed.json()["error_type"] == "unavailable"
        assert "model.onnx has sha256" in failed.json()["error"]
        assert "tiny-xnli/fp32 still serves" in failed.json()["error"]
        answer = post(f"{server.url}/v1/models/tiny-xnli/predict", json=PAIR, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["variant"] == "fp32"
        index = index_of(server.url)
        assert index[("tiny-xnli", "fp32")]["state"] == "READY"
        int8 = index[("tiny-xnli", "int8")]
        assert int8["state"] == "UNAVAILABLE" and "model.onnx has sha256" in int8["reason"]
        assert get(f"{server.url}/readyz").status_code == 200
    finally:
        model.write_bytes(original)
    assert load(server.url, "tiny-xnli", {"parameters": {"variant": "int8"}}).status_code == 200
    assert index_of(server.url)[("tiny-xnli", "int8")] == {"name": "tiny-xnli", "version": "int8", "state": "READY",
                                                            "reason": ""}  # fmt: skip


async def hammer(url: str, until: asyncio.Event, results: list[tuple[int, str, float]], clients: int = 8) -> None:
    """``clients`` keep-alive clients posting one pair after another until ``until`` is set, adding (status,
    variant or error, time answered) to ``results`` per request."""

    async def client(index: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120) as http:
            n = 0
            while not until.is_set():
                n += 1
                body = {"inputs": [{"text": f"{index}-{n} A man plays a guitar.", "text_pair": "Music."}]}
                response = await http.post("/v1/models/tiny-xnli/predict", json=body)
                data = response.json()
                results.append((response.status_code, data.get("variant") or data.get("error", ""), time.monotonic()))

    await asyncio.gather(*(client(i) for i in range(clients)))


def test_reloads_under_load_fail_no_request_and_unload_loses_none(explicit) -> None:
    """Eight clients posting without pause while the model switches variants four times: every request gets 200,
    answered by the old or the new model; then an unload under the same load: 200 before it, 503 (unloaded) after,
    nothing else (no reset, no 500); the in-flight and queue gauges come back to 0."""
    server, _ = explicit
    assert load(server.url, "tiny-xnli", {"parameters": {"variant": "fp32"}}).status_code == 200

    async def scenario() -> tuple[list[tuple[int, str, float]], list[str], float]:
        stop = asyncio.Event()
        results: list[tuple[int, str, float]] = []
        load_task = asyncio.ensure_future(hammer(server.url, stop, results))
        switched = []
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=120) as control:
            await asyncio.sleep(0)
            for variant in ("int8", "fp32", "int8", "fp32"):
                response = await control.post(
                    "/v2/repository/models/tiny-xnli/load", json={"parameters": {"variant": variant}}
                )
                assert response.status_code == 200, response.text
                switched.append(response.json()["version"])
            unloading = time.monotonic()
            response = await control.post("/v2/repository/models/tiny-xnli/unload")
            assert response.status_code == 200, response.text
            # a little more load against the unloaded model, then stop
            while not any(r[0] == 503 for r in results) and not load_task.done():
                await asyncio.sleep(0.01)
        stop.set()
        await load_task
        return results, switched, unloading

    results, switched, unloading = asyncio.run(scenario())
    assert switched == ["int8", "fp32", "int8", "fp32"]
    before = [r for r in results if r[2] < unloading]
    statuses = {r[0] for r in results}
    assert statuses <= {200, 503}, sorted(statuses)
    assert all(status == 200 for status, _, _ in before), [r for r in before if r[0] != 200][:5]
    assert {variant for status, variant, _ in before if status == 200} == {"fp32", "int8"}
    assert all("unloaded" in answer for status, answer, _ in results if status == 503)
    assert len(before) > 40, f"only {len(before)} requests were sent while reloading"
    metrics = get(f"{server.url}/metrics").text
    assert metric_total(metrics, "xstilts_requests_in_flight", model="tiny-xnli") == 0
    assert metric_total(metrics, "xstilts_queue_depth", model="tiny-xnli") == 0
    assert metric_total(metrics, "xstilts_requests_total", model="tiny-xnli", status="500") == 0
    assert load(server.url, "tiny-xnli", {"parameters": {"variant": "fp32"}}).status_code == 200


def test_model_control_none_refuses_load_and_unload(server: ServerProcess) -> None:
    for action in ("load", "unload"):
        response = post(f"{server.url}/v2/repository/models/tiny-xnli/{action}")
        assert response.status_code == 409 and response.json()["error_type"] == "conflict"
        assert "--model-control explicit" in response.json()["error"]
    index = post(f"{server.url}/v2/repository/index").json()
    assert {(e["name"], e["version"], e["state"]) for e in index} >= {("tiny-xnli", "int8", "READY")}


def replace_folder(source: Path, target: Path) -> None:
    """Put a copy of ``source`` at ``target`` the way export does: written beside it, hidden, then renamed."""
    stage = target.parent / f".{target.name}.partial"
    shutil.copytree(source, stage)
    if target.exists():
        shutil.rmtree(target)
    os.replace(stage, target)


def test_poll_loads_new_bundles_and_reloads_changed_ones(repository: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repository"
    shutil.copytree(repository / "tiny-xnli" / "fp32", copy / "tiny-xnli" / "fp32")
    env = {"XSTILTS_MODEL_CONTROL": "poll", "XSTILTS_POLL_SECONDS": "0.2"}
    server = ServerProcess(copy, tmp_path / "server.log", env).start()
    try:
        url = server.url

        def state(name: str) -> tuple[str, str] | None:
            entry = next((e for e in post(f"{url}/v2/repository/index").json() if e["name"] == name), None)
            return (entry["state"], entry["reason"]) if entry else None

        (copy / "tiny-xcopa").mkdir()
        replace_folder(repository / "tiny-xcopa" / "fp32", copy / "tiny-xcopa" / "fp32")
        wait_for(lambda: state("tiny-xcopa") == ("READY", ""), "the new model to load")
        assert get(f"{url}/readyz").status_code == 200

        replace_folder(repository / "tiny-xnli" / "fp32", copy / "tiny-xnli" / "fp32")  # a re-export
        wait_for(lambda: "loaded tiny-xnli/fp32, replacing tiny-xnli/fp32" in server.logs(), "the reload")

        corrupt = tmp_path / "corrupt"
        shutil.copytree(repository / "tiny-xcopa" / "fp32", corrupt)
        flip_middle(corrupt / MODEL_FILE)
        replace_folder(corrupt, copy / "tiny-xcopa" / "fp32")
        reason = wait_for(lambda: (s := state("tiny-xcopa")) and s[1] and s, "the failed reload")
        assert reason[0] == "READY" and "a reload failed" in reason[1] and "model.onnx has sha256" in reason[1]
        answer = post(f"{url}/v1/models/tiny-xcopa/predict", json=CHOICE)
        assert answer.status_code == 200, "the old model serves on"
        assert server.logs().count("cannot load tiny-xcopa/fp32") == 1, "a failed bundle is tried once per change"
    finally:
        assert server.stop() == 0, server.logs()
