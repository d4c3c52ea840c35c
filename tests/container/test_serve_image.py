"""The ``serve-cpu`` image, built and run: it answers as the server does outside it, runs locked down, drains on
``docker stop`` and refuses to serve a missing or corrupt repository.

The image is built once per session FROM the Debian stand-in (tests/container/engine.py); every container runs
``--read-only`` with a tmpfs at /tmp (its cache folder) and the tiny repository mounted read-only at /models, and
publishes its port on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.container.engine import LABEL, Engine
from tests.serve.answers import ANSWER_CHECKS, PAIR_LANGUAGES, real_examples
from tests.serve.conftest import ServerProcess
from xstilts.bench.servers import free_port

FP32 = "tiny-xnli=fp32,tiny-xcopa=fp32"  # the answer checks need fp32 (int8 rows move with their neighbours)
UID = 10001
# generous waits (never asserted durations): on a loaded 2-core machine a start or a drain took over 30 s
SLOW_MACHINE_S = 300.0
FORBIDDEN = ("torch", "transformers", "optimum")
# The drain resets a request now and then (issue 19: about 1 in 500 with 16 keep-alive clients); such a run is
# marked xfail with its measured rate. More than this share lost is a failure of its own.
KNOWN_RESET_RATE = 0.02
LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8


class Container:
    """One ``docker run`` of the serving image, locked down as the manifests run it."""

    def __init__(self, engine: Engine, image: str, repository: Path | None, env: dict[str, str] | None = None):
        self.engine, self.image, self.repository = engine, image, repository
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.id = ""

    def start(self) -> Container:
        args = ["run", "--detach", "--label", LABEL, "--read-only", "--tmpfs", "/tmp:rw,mode=1777,size=64m"]
        args += ["--publish", f"127.0.0.1:{self.port}:8000"]
        if self.repository is not None:
            args += ["--volume", f"{self.repository}:/models:ro"]
        for key, value in self.env.items():
            args += ["--env", f"{key}={value}"]
        self.id = self.engine.run(*args, self.image).stdout.strip()
        return self

    def state(self) -> dict:
        return self.engine.inspect(self.id)["State"]

    def logs(self) -> str:
        done = self.engine.run("logs", self.id, check=False)
        return done.stdout + done.stderr

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                raise AssertionError(f"the container exited ({self.state()['ExitCode']}):\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout:.0f} s:\n{self.logs()}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        done = self.engine.run("wait", self.id, timeout=timeout)
        return int(done.stdout.strip())

    def exec(self, *command: str) -> tuple[int, str]:
        done = self.engine.run("exec", self.id, *command, check=False)
        return done.returncode, done.stdout + done.stderr

    def remove(self) -> None:
        if self.id:
            self.engine.run("rm", "--force", self.id, check=False)


@pytest.fixture(scope="module")
def served(engine: Engine, serve_image: str, mounted_repository: Path) -> Iterator[Container]:
    """The image serving the tiny repository's fp32 bundles, ready."""
    container = Container(engine, serve_image, mounted_repository, {"XSTILTS_MODELS": FP32}).start()
    try:
        container.wait_ready()
        yield container
    finally:
        container.remove()


@pytest.fixture(scope="module")
def outside(mounted_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``xstilts serve`` on this machine, same bundles and settings: what the container must answer like."""
    log_file = tmp_path_factory.mktemp("outside") / "server.log"
    server = ServerProcess(mounted_repository, log_file, {"XSTILTS_MODELS": FP32}).start(timeout=SLOW_MACHINE_S)
    yield server
    assert server.stop(timeout=SLOW_MACHINE_S) == 0, server.logs()


def same(inside, outside, where: str = "answer") -> None:
    """Equal JSON, floats within 1e-6 (the same onnxruntime wheel on the same CPU: in practice bit-equal)."""
    if isinstance(outside, float):
        assert math.isclose(inside, outside, rel_tol=1e-6, abs_tol=1e-6), f"{where}: {inside} != {outside}"
    elif isinstance(outside, dict):
        assert isinstance(inside, dict) and inside.keys() == outside.keys(), f"{where}: {inside} != {outside}"
        for key in outside:
            same(inside[key], outside[key], f"{where}.{key}")
    elif isinstance(outside, list):
        assert isinstance(inside, list) and len(inside) == len(outside), f"{where}: {inside} != {outside}"
        for index, (a, b) in enumerate(zip(inside, outside, strict=True)):
            same(a, b, f"{where}[{index}]")
    else:
        assert inside == outside, f"{where}: {inside!r} != {outside!r}"


def requests_to_compare(data_dir: Path) -> list[tuple[str, dict]]:
    pairs = real_examples("xnli", "test", PAIR_LANGUAGES, data_dir)
    return [
        ("/v1/models/tiny-xnli/predict", {"inputs": [{"text": e.text_a, "text_pair": e.text_b} for e in pairs]}),
        ("/v1/models/tiny-xnli/predict", {"inputs": ["Just one text.", {"text": LONG, "text_pair": "x"}]}),
        (
            "/v1/models/tiny-xcopa/predict",
            {"inputs": [{"premise": "The man fell.", "question": "cause", "choices": ["He slipped.", "He sang."]}]},
        ),
        (
            "/v2/models/tiny-xnli/infer",
            {
                "inputs": [
                    {"name": "text_a", "shape": [len(pairs)], "datatype": "BYTES", "data": [e.text_a for e in pairs]},
                    {"name": "text_b", "shape": [len(pairs)], "datatype": "BYTES", "data": [e.text_b for e in pairs]},
                ]
            },
        ),
        ("/v2/models/tiny-xnli", {}),
        ("/v1/models/tiny-xnli/predict", {"inputs": []}),  # an error answers alike too
    ]


def test_ready_with_both_models(served: Container) -> None:
    assert httpx.get(f"{served.url}/readyz").status_code == 200
    models = {m["name"]: m for m in httpx.get(f"{served.url}/v1/models").json()["models"]}
    assert set(models) == {"tiny-xnli", "tiny-xcopa"}
    assert {m["variant"] for m in models.values()} == {"fp32"}
    assert {m["provider"] for m in models.values()} == {"CPUExecutionProvider"}


@pytest.mark.parametrize("check", ANSWER_CHECKS, ids=lambda check: check.__name__)
def test_answers_are_the_bundles_own(served: Container, mounted_repository: Path, data_dir: Path, check) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        check(client, mounted_repository, data_dir)


def test_answers_are_those_of_the_server_outside(served: Container, outside: ServerProcess, data_dir: Path) -> None:
    for index, (path, body) in enumerate(requests_to_compare(data_dir)):
        headers = {"X-Request-Id": f"compare-{index}"}  # the same id on both sides: error bodies carry it
        if body:
            inside = httpx.post(served.url + path, json=body, headers=headers)
            there = httpx.post(outside.url + path, json=body, headers=headers)
        else:
            inside = httpx.get(served.url + path, headers=headers)
            there = httpx.get(outside.url + path, headers=headers)
        assert inside.headers["x-request-id"] == there.headers["x-request-id"] == headers["X-Request-Id"]
        assert inside.status_code == there.status_code, f"{path}: {inside.text} against {there.text}"
        same(inside.json(), there.json(), path)


def test_runs_as_a_non_root_user_on_a_read_only_root(served: Container) -> None:
    info = served.engine.inspect(served.id)
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    code, status = served.exec("cat", "/proc/1/status")
    assert code == 0, status
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {str(UID)}, f"the server (PID 1) runs as uid {uids}"
    code, output = served.exec("touch", "/opt/venv/written")
    assert code != 0 and "Read-only file system" in output, output
    code, output = served.exec("touch", "/models/written")
    assert code != 0, "the model repository is writable"
    code, output = served.exec("touch", "/tmp/xstilts-written")
    assert code == 0, f"the tmpfs at /tmp is not writable: {output}"


def test_no_torch_transformers_or_optimum_in_the_image(served: Container) -> None:
    probe = "import importlib.util as u; print(sorted(m for m in {ms} if u.find_spec(m)))"
    code, output = served.exec("python", "-c", probe.format(ms=(*FORBIDDEN, "onnxruntime", "tokenizers")))
    assert code == 0, output
    assert output.strip() == str(sorted(["onnxruntime", "tokenizers"])), f"importable: {output}"


async def load_until_stopped(
    url: str, stop, total: int = 320, concurrency: int = 16, stop_after: int = 64
) -> tuple[Counter, float]:
    """``total`` requests, ``concurrency`` at a time on keep-alive connections; ``stop()`` (in a thread) once
    ``stop_after`` answers came. Outcomes: the status, ``refused`` (a new connection the server did not accept:
    that worker stops) or ``lost: <error>`` (a connection that sent its request and got no answer)."""
    outcomes: Counter = Counter()
    numbers = iter(range(total))
    stopping: list[threading.Thread] = []
    signalled = [math.inf]
    early: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            for number in numbers:
                body = {"inputs": [{"text": f"{number}-{i} {LONG}", "text_pair": LONG} for i in range(4)]}
                try:
                    status: str | int = (await client.post("/v1/models/tiny-xnli/predict", json=body)).status_code
                except httpx.ConnectError:
                    status = "refused"
                except httpx.TransportError as exc:
                    status = f"lost: {type(exc).__name__}"
                outcomes[status] += 1
                if status != 200 and time.monotonic() < signalled[0]:
                    early.append(str(status))
                if not stopping and outcomes[200] >= stop_after:
                    signalled[0] = time.monotonic()
                    stopping.append(threading.Thread(target=stop))
                    stopping[0].start()
                if status == "refused":
                    return

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    assert stopping, f"the load ended before the stop: {outcomes}"
    stopping[0].join(60)
    assert not early, f"answers other than 200 before the stop: {early}"
    return outcomes, signalled[0]


def test_docker_stop_under_load_loses_no_accepted_request(
    engine: Engine, serve_image: str, mounted_repository: Path
) -> None:
    """``docker stop`` (SIGTERM to the server, PID 1) in the middle of a bounded load on 127.0.0.1: every request
    the server accepted gets 200, or 503 while it drains; none is dropped; the container exits 0 after draining."""
    container = Container(engine, serve_image, mounted_repository, {"XSTILTS_MAX_QUEUE_SIZE": "4096"}).start()
    try:
        container.wait_ready()
        stop = lambda: engine.run("stop", "--time", "30", container.id, timeout=60)  # noqa: E731
        outcomes, _ = asyncio.run(load_until_stopped(container.url, stop))
        code = container.wait_exit()
        logs = container.logs()
    finally:
        container.remove()
    print(f"docker stop under load: {dict(outcomes)}")
    assert code == 0, f"exit code {code} after docker stop:\n{logs}"
    assert "draining" in logs, logs
    lost = {k: v for k, v in outcomes.items() if str(k).startswith("lost")}
    assert set(outcomes) - set(lost) <= {200, 503, "refused"}, outcomes
    assert outcomes[200] >= 64 and outcomes["refused"] > 0, f"the stop did not happen under load: {outcomes}"
    sent = sum(v for k, v in outcomes.items() if k != "refused")
    rate = sum(lost.values()) / sent
    assert rate <= KNOWN_RESET_RATE, f"requests sent and never answered: {lost} of {sent} ({dict(outcomes)})"
    if lost:  # measured here: 1 of 245 sent (ReadError: the connection reset) on a 2-core VM
        pytest.xfail(
            f"issue 19: the drain reset {sum(lost.values())} of {sent} requests sent on keep-alive connections "
            f"({rate:.1%}, {lost}) instead of answering 200 or 503"
        )


def test_a_missing_repository_stops_the_container_with_one_clear_line(engine: Engine, serve_image: str) -> None:
    """No repository mounted: /models is the image's empty one. The container exits non-zero, never serving."""
    container = Container(engine, serve_image, None).start()
    try:
        code = container.wait_exit()
        logs = container.logs()
    finally:
        container.remove()
    assert code != 0, logs
    errors = [line for line in logs.splitlines() if "error" in line.lower() and "onnxruntime" not in line]
    assert errors == ["xstilts: error: model repository /models has no bundles (<name>/<variant>/bundle.json)"], logs


def test_a_corrupt_bundle_never_serves(
    engine: Engine, serve_image: str, mounted_repository: Path, tmp_path: Path
) -> None:
    """A bundle whose ONNX file is garbage: one clear log line naming it, never ready; the container exits 1."""
    broken = tmp_path / "repository"
    shutil.copytree(mounted_repository / "tiny-xnli" / "fp32", broken / "tiny-xnli" / "fp32")
    (broken / "tiny-xnli" / "fp32" / "model.onnx").write_bytes(b"not an onnx model" * 100)
    for path in [tmp_path, broken, *broken.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    container = Container(engine, serve_image, broken).start()
    try:
        ready = []
        deadline = time.monotonic() + 60
        while container.state()["Running"] and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                ready.append(httpx.get(f"{container.url}/readyz", timeout=2).status_code)
            time.sleep(0.1)
        code = container.wait_exit()
        logs = container.logs()
    finally:
        container.remove()
    assert 200 not in ready, f"a corrupt bundle was served as ready:\n{logs}"
    assert code == 1, f"exit code {code}:\n{logs}"
    named = [line for line in logs.splitlines() if "tiny-xnli" in line and "model.onnx" in line]
    assert named, f"no log line names the broken bundle:\n{logs}"
