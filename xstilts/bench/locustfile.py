"""Load on ``POST /v1/models/{name}/predict`` (or ``/embed``) with real evaluation texts, for locust (run it in its own
process).

Alone::

    locust -f xstilts/bench/locustfile.py --headless -H http://127.0.0.1:8000 -u 4 -r 4 -t 30s \\
        --payloads payloads.json                     # written by xstilts bench (or XSTILTS_BENCH_PAYLOADS)
    locust -f xstilts/bench/locustfile.py --headless -H http://127.0.0.1:8000 -u 4 -r 4 -t 30s \\
        --model tiny-xnli --task xnli --per-language 50   # builds payloads from the data folder itself

Closed loop (the default): each user sends a request, waits for its answer, sends the next (``--think-time``
seconds apart), so ``-u`` is the concurrency. Open loop (``--arrival-rate R``): requests arrive as a Poisson
process of R requests/s in total (split over the ``-u`` users), sent on time whether or not earlier ones have
been answered, and each latency is counted from the moment the request was due, so that a slow server cannot
hide behind coordinated omission (MLPerf's Server scenario). ``--max-requests N`` ends the run after N
requests, ``-t`` after a time; ``--latency-file F`` writes every request's latency (JSON) when locust quits.

Distributed (load beyond one machine): the same file on a master (``--master --expect-workers K``, with the
run options) and K workers (``--worker --master-host HOST``, each with ``--payloads`` on its own disk, or the
data folder). The master gives each worker its share of ``--max-requests`` and ends the run when the workers'
reports reach it; each worker writes ``<latency-file stem>.worker-<pid>.json`` (on its own machine) and the
master's ``--csv``/``--json-file`` aggregate them all.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Group
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

PAYLOADS_ENV = "XSTILTS_BENCH_PAYLOADS"
REQUEST_NAME = "predict"
CAP_MESSAGE = "xstilts_cap"


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("xstilts", "xstilts bench options")
    group.add_argument("--payloads", env_var=PAYLOADS_ENV, default="", help="payload file written by xstilts bench")
    group.add_argument("--model", env_var="XSTILTS_BENCH_MODEL", default="", help="model name (default: from payloads)")
    group.add_argument("--task", default="", help="without --payloads: the task whose evaluation texts to send")
    group.add_argument("--data-dir", default="", help="without --payloads: the data folder")
    group.add_argument("--per-language", type=int, default=50, help="without --payloads: items per language")
    group.add_argument("--items-per-request", type=int, default=1, help="without --payloads: items per request")
    group.add_argument("--arrival-rate", type=float, default=0.0, help="open loop: requests/s in total (0: closed)")
    group.add_argument("--think-time", type=float, default=0.0, help="closed loop: seconds between a user's requests")
    group.add_argument("--max-requests", type=int, default=0, help="end the run after this many requests (0: no cap)")
    group.add_argument("--latency-file", default="", help="write every request's latency here (JSON) on quitting")
    group.add_argument("--bench-seed", type=int, default=0, help="seed of the open-loop arrivals and body order")
    group.add_argument("--api-key", env_var="XSTILTS_API_KEY", default="", help="bearer token for the server")


class Run:
    """This process's view of the run: payloads, the request cap, requests in flight, and every latency."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.sequences: list[int] = []
        self.path = ""
        self.answer = b""  # what a successful answer carries: b'"predictions"' or b'"embeddings"'
        self.loaded = False
        self.issued = 0  # requests counted against the cap
        self.started = 0  # requests actually sent
        self.completed = 0
        self.cap = 0
        self.share: int | None = None  # distributed: this worker's part of the cap, sent by the master
        self.worker = False
        self.ended_by = ""
        self.in_flight: dict[int, float] = {}
        self.unfinished_ms: list[float] = []
        self.records: list[tuple[float, float, int, int]] = []  # start (epoch s), latency ms, ok, sequences
        self.t0 = time.time()
        self.latency_file = ""
        self.written = False

    def load(self, environment: Any) -> None:
        if self.loaded:
            return
        options = environment.parsed_options
        payloads = _payloads(options, environment.host)
        self.path = payloads["path"]
        self.answer = json.dumps(payloads.get("answer", "predictions")).encode()
        self.bodies = [json.dumps(body, ensure_ascii=False).encode() for body in payloads["bodies"]]
        self.sequences = list(payloads["sequences"])
        if self.share is None:
            self.cap = int(options.max_requests or 0)
        self.worker = isinstance(environment.runner, WorkerRunner)
        self.loaded = True

    def take(self) -> bool:
        """Count one more request, unless the cap is reached."""
        if self.cap and self.issued >= self.cap:
            return False
        self.issued += 1
        return True

    def set_share(self, share: int) -> None:
        self.share = self.cap = int(share)

    def done(self, environment: Any) -> None:
        self.completed += 1
        # a worker only stops sending; the master ends the run once the workers' reports reach the cap
        if self.cap and self.completed >= self.cap and not self.ended_by and not self.worker:
            self.ended_by = "requests"
            gevent.spawn(environment.runner.quit)


RUN = Run()


def _payloads(options: Any, host: str | None) -> dict[str, Any]:
    """The payload file's content, or payloads built from the data folder when no file is given."""
    if options.payloads:
        data = json.loads(Path(options.payloads).read_text(encoding="utf-8"))
        if options.model and options.model != data["model"]:
            data["path"] = data["path"].replace(f"/models/{data['model']}/", f"/models/{options.model}/", 1)
        return data
    from xstilts.bench.payloads import make_payloads
    from xstilts.contracts.evaluation import load_evaluation_sample
    from xstilts.paths import resolve_data_dir

    model, task_name = options.model, options.task
    if not model or not task_name:
        import httpx

        listed = httpx.get(f"{(host or '').rstrip('/')}/v1/models", timeout=10).json()["models"]
        chosen = next((m for m in listed if m["name"] == model), listed[0]) if listed else None
        if chosen is None:
            raise RuntimeError(f"{host} serves no model")
        model, task_name = model or chosen["name"], task_name or chosen["task"]
    sample = load_evaluation_sample(
        task_name, resolve_data_dir(options.data_dir or None), None, options.per_language, 0
    )
    return make_payloads(sample, model, options.items_per_request, options.bench_seed).to_json()


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    # a worker's own --latency-file (the master's options replace the worker's when the test starts)
    RUN.latency_file = environment.parsed_options.latency_file
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(CAP_MESSAGE, lambda environment, msg, **_: RUN.set_share(msg.data))


@events.test_start.add_listener
def _start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    cap = environment.parsed_options.max_requests
    if isinstance(runner, MasterRunner) and cap:
        # each worker gets its share of the cap before its users start, then the master watches the total
        runner.send_message(CAP_MESSAGE, -(-cap // max(1, runner.worker_count)))
        gevent.spawn(_master_cap, environment)


def _master_cap(environment: Any) -> None:
    """Distributed: quit once the workers have reported ``--max-requests`` requests."""
    cap = environment.parsed_options.max_requests
    while True:
        gevent.sleep(0.2)
        if environment.runner.stats.total.num_requests >= cap:
            RUN.ended_by = "requests"
            environment.runner.quit()
            return


@events.test_stopping.add_listener
def _stopping(environment: Any, **_: Any) -> None:
    if not RUN.ended_by:
        RUN.ended_by = "requests" if RUN.cap and RUN.issued >= RUN.cap else "time"
    # requests still waiting for an answer when the run ends (their users are about to be stopped)
    now = time.perf_counter()
    RUN.unfinished_ms = sorted(round((now - due) * 1000, 3) for due in RUN.in_flight.values())


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    target = RUN.latency_file or environment.parsed_options.latency_file
    if RUN.written or not target or isinstance(environment.runner, MasterRunner):
        return
    RUN.written = True
    path = Path(target)
    if isinstance(environment.runner, WorkerRunner):
        path = path.with_name(f"{path.stem}.worker-{os.getpid()}{path.suffix}")
    report = {
        "t0": RUN.t0,
        "ended_by": RUN.ended_by or "time",
        "issued": RUN.issued,
        "started": RUN.started,
        "completed": RUN.completed,
        "unfinished_ms": RUN.unfinished_ms,
        "columns": ["start", "latency_ms", "ok", "sequences"],
        "records": RUN.records,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, path)


class PredictUser(FastHttpUser):
    """Posts the payload bodies in turn; closed loop, or open loop with ``--arrival-rate``."""

    wait_time = constant(0)
    concurrency = 256  # connections per user: the open-loop user keeps many requests in flight
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        RUN.load(self.environment)
        options = self.environment.parsed_options
        self.rng = random.Random(f"{options.bench_seed}-{id(self)}")
        self.position = self.rng.randrange(len(RUN.bodies))
        self.headers = {"Content-Type": "application/json"}
        if options.api_key:
            self.headers["Authorization"] = f"Bearer {options.api_key}"
        self.pool = Group()
        self.think = float(options.think_time or 0)
        users = max(1, int(getattr(options, "num_users", 1) or 1))
        self.rate = float(options.arrival_rate or 0) / users

    def on_stop(self) -> None:
        self.pool.kill(block=False)

    @task
    def predict(self) -> None:
        if self.rate > 0:
            self.open_loop()
        else:
            if not RUN.take():
                raise StopUser()
            self.send(time.perf_counter())
            if self.think:
                gevent.sleep(self.think)

    def open_loop(self) -> None:
        """Poisson arrivals at ``self.rate``, each request sent on its own greenlet when due."""
        due = time.perf_counter()
        while RUN.take():
            due += self.rng.expovariate(self.rate)
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            self.pool.spawn(self.send, due)
        self.pool.join()
        raise StopUser()

    def send(self, due: float) -> None:
        """One request; its latency counts from ``due`` (the moment it was meant to leave)."""
        index = self.position % len(RUN.bodies)
        self.position += 1
        key = id(gevent.getcurrent())
        RUN.in_flight[key] = due
        RUN.started += 1
        sequences = RUN.sequences[index]
        try:
            with self.client.post(
                RUN.path,
                data=RUN.bodies[index],
                headers=self.headers,
                name=REQUEST_NAME,
                catch_response=True,
                context={"sequences": sequences},
            ) as response:
                latency = (time.perf_counter() - due) * 1000
                response.request_meta["response_time"] = latency
                ok = response.status_code == 200 and RUN.answer in (response.content or b"")
                if not ok:
                    response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")
                RUN.records.append((time.time() - latency / 1000, round(latency, 3), int(ok), sequences))
        finally:
            RUN.in_flight.pop(key, None)
            RUN.done(self.environment)
