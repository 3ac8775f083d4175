"""Helpers of the distributed tests: the cluster stand-in, run drivers, log checks.

The cluster (see conftest):  3 NATS nodes behind a balancer, 2 orchestrators and 2 workers
per provider, every process logging in as its own NATS user, over TLS with the
cluster's private CA (``connect_as`` gives a test client the same). Two fake-model
"providers": ``chatcompletion`` and ``vllm`` backends both pointed at the scripted fake
OpenAI server (each accepts a ``base_url``).

Two ways to drive runs: straight over NATS (``create_run`` / ``wait_all``), and as a
client of the HTTP API replicas would (``ApiDriver``: create with retries that never
make a run twice, follow the run's SSE events, read ``GET /v1/runs/{id}``, check the
result with ``check_result``).
The chaos benchmark (bench/bench_chaos.py) uses the same driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from massgen_kit.health import inbox_prefix_for
from massgen_proto import subjects
from massgen_proto.messages import CreateRun, ErrorReply, OrchestratorReplyAdapter

from scripts.cluster import Cluster

PROVIDERS = ["chatcompletion", "vllm"]
__all__ = [
    "PROVIDERS",
    "ApiDriver",
    "Cluster",
    "RunOutcome",
    "check_result",
    "connect",
    "connect_as",
    "create_run",
    "diagnose",
    "drive_runs",
    "team3_config",
    "team3_expected",
    "team_config",
    "violations",
    "wait_all",
]

TERMINAL = {"completed", "timed_out", "failed", "cancelled"}


def team_config(base_url: str, turn_timeout: float = 30.0) -> dict[str, Any]:
    """Two agents, one per provider, both on the fake model."""
    return {
        "agents": [
            {"id": "a1", "backend": {"type": "chatcompletion", "model": "m1",
                                     "base_url": base_url, "api_key": "sk-fake"}},
            {"id": "a2", "backend": {"type": "vllm", "model": "m2", "base_url": base_url}},
        ],
        "timeout_settings": {
            "turn_timeout_seconds": turn_timeout,
            "orchestrator_timeout_seconds": 170,
        },
    }  # fmt: skip


async def connect(url: str, **kwargs: Any) -> nats.aio.client.Client:
    """A client that keeps reconnecting through the balancer.

    With TLS (``tls://`` URLs) pass ``tls=cluster.client_tls()``: the default SSL
    context does not trust the cluster's private CA. ``connect_as`` does it for you.
    """

    async def quiet(_error: Exception) -> None:  # reconnects are expected in these tests
        return None

    kwargs.setdefault("error_cb", quiet)
    # Each NATS user may only use its own inbox prefix (see deploy/k8s/permissions.py).
    kwargs.setdefault("inbox_prefix", inbox_prefix_for(url, "api"))
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, **kwargs)


async def connect_as(cluster: Cluster, user: str, **kwargs: Any) -> nats.aio.client.Client:
    """``connect`` logged in as NATS ``user`` of ``cluster``, trusting its CA (with TLS)."""
    if cluster.tls:
        kwargs.setdefault("tls", cluster.client_tls())
    return await connect(cluster.url_for(user), **kwargs)


async def create_run(nc, kv, run_id: str, question: str, config: dict[str, Any]) -> None:
    """Ask an orchestrator to create a run; retry through failovers, never twice."""
    payload = CreateRun(run_id=run_id, question=question, config=config).model_dump_json()
    for _ in range(20):
        try:
            reply = await nc.request(subjects.SUBMIT_CREATE, payload.encode(), timeout=5.0)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            if await run_status(kv, run_id) is not None:
                return  # created; only the reply was lost
            await asyncio.sleep(0.5)
            continue
        parsed = OrchestratorReplyAdapter.validate_json(reply.data)
        if isinstance(parsed, ErrorReply):
            if await run_status(kv, run_id) is not None:
                return
            raise AssertionError(f"run {run_id} refused: {parsed.error}")
        return
    raise AssertionError(f"run {run_id} could not be created")


async def run_status(kv, run_id: str) -> str | None:
    """The run's status in the runs bucket, None if it is not there (or NATS hiccups)."""
    import json

    try:
        entry = await kv.get(run_id)
    except Exception:
        return None
    return str(json.loads(entry.value).get("status"))


async def wait_all(kv, run_ids: list[str], limit: float) -> dict[str, str | None]:
    """Poll the runs bucket until every run is over or ``limit`` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    statuses: dict[str, str | None] = {}
    while True:
        pending = [r for r in run_ids if statuses.get(r) not in TERMINAL]
        for run_id in pending:
            statuses[run_id] = await run_status(kv, run_id)
        if all(statuses.get(r) in TERMINAL for r in run_ids) or loop.time() > deadline:
            return statuses
        await asyncio.sleep(0.5)


def violations(cluster: Cluster, user: str | None = None) -> list[str]:
    """Permission-violation lines in the NATS nodes' logs (optionally for one user)."""
    lines = []
    for log in (cluster.dir / "logs").glob("nats-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "Violation" in line and (user is None or f'user:{user}"' in line):
                lines.append(line)
    return lines


# -- driving runs through the HTTP API ------------------------------------------------------

TEAM3_MODELS = {"a1": "m1", "a2": "m2", "a3": "m3"}
"""Agent id -> fake model of ``team3_config`` (serve ``start_team(server, 3)``)."""


def team3_config(base_url: str) -> dict[str, Any]:
    """Three agents over the two providers (a1, a3 on ``chatcompletion``, a2 on ``vllm``).

    No ``timeout_settings``: the defaults (turn timeout 600 s) hold, as in production,
    so a dropped turn shows up as a run that does not finish, not as a quick retry.
    """

    def backend(provider: str, model: str) -> dict[str, Any]:
        extra = {"api_key": "sk-fake"} if provider == "chatcompletion" else {}
        return {"type": provider, "model": model, "base_url": base_url, **extra}

    return {
        "agents": [
            {"id": "a1", "backend": backend("chatcompletion", "m1")},
            {"id": "a2", "backend": backend("vllm", "m2")},
            {"id": "a3", "backend": backend("chatcompletion", "m3")},
        ]
    }


def team3_expected() -> dict[str, str]:
    """Agent id -> the only answer its fake model gives (see ``fakes.serve.start_team``)."""
    from tests.support.fakes.serve import team_answer

    return {agent: team_answer(int(model[1:]) - 1) for agent, model in TEAM3_MODELS.items()}


def check_result(view: dict[str, Any], expected: dict[str, str]) -> list[str]:
    """What is wrong with a completed run's ``GET /v1/runs/{id}`` body (empty: nothing).

    The fake agents can only give their own scripted answer, vote, and present
    ``Final: <their answer>``; so the winner must be an agent of the team holding the
    most current votes, every vote must name an agent that answered, and the final
    answer must be the winner's presentation.
    """
    problems = []
    if view.get("status") != "completed":
        return [f"status {view.get('status')!r}: {view.get('message', '')}"]
    answered = set()
    for item in view.get("answers") or []:
        agent = item.get("agent")
        answered.add(agent)
        if expected.get(agent) != item.get("content"):
            problems.append(f"answer of {agent!r} is {item.get('content')!r}")
    votes = Counter(v.get("target") for v in view.get("votes") or [])
    winner = view.get("winner")
    if winner not in expected:
        problems.append(f"winner {winner!r} is not an agent of the team")
    if not votes:
        problems.append("completed without a current vote")
    elif votes[winner] != max(votes.values()):
        problems.append(f"winner {winner!r} has {votes[winner]} votes of {dict(votes)}")
    for target in votes:
        if target not in answered:
            problems.append(f"vote for {target!r}, which has no answer")
    if winner in expected and not _presents(view.get("final_answer") or "", expected[winner]):
        problems.append(f"final answer {view.get('final_answer')!r} is not {winner}'s")
    return problems


_FILLER = re.compile(r"^(w\d+\s*)*$")


def _presents(final: str, answer: str) -> bool:
    """``final`` is ``Final: <answer>``, then only the fake's filler words (``w7 w8``)."""
    head = f"Final: {answer}"
    return final.startswith(head) and bool(_FILLER.match(final[len(head) :].strip()))


@dataclass
class RunOutcome:
    """One run as its client saw it."""

    question: str
    submitted_at: float
    """Wall clock (``time.time()``) of the first create attempt."""
    run_id: str | None = None
    created_via: str = ""
    """``201``, or ``201 again`` (an earlier attempt's outcome was unknown or failed)."""
    attempts: int = 0
    create_errors: list[str] = field(default_factory=list)
    view: dict[str, Any] | None = None
    """Last ``GET /v1/runs/{id}`` body seen."""
    seen_at: float | None = None
    """Wall clock of the last successful ``GET /v1/runs/{id}``."""
    problems: list[str] = field(default_factory=list)
    kv_status: str | None = None
    """The run's status in the orchestrators' KV bucket (filled in by ``diagnose``)."""

    @property
    def status(self) -> str | None:
        return self.view.get("status") if self.view else None

    @property
    def finished_at(self) -> float | None:
        return ((self.view or {}).get("timings") or {}).get("finished_at")

    @property
    def duration(self) -> float | None:
        """Seconds from the first create attempt to the run's end (server clock, same host)."""
        end = self.finished_at
        return None if end is None else end - self.submitted_at

    def cause(self) -> str:
        """Why a run that did not complete did not (after ``diagnose``)."""
        if self.run_id is None:
            last = self.create_errors[-1] if self.create_errors else ""
            code = re.search(r"HTTP \d+", last)
            return f"never created ({code.group(0) if code else 'gave up'})"
        if self.status in ("failed", "timed_out", "cancelled"):
            return f"ended {self.status}"
        if self.kv_status in ("completed", "failed", "timed_out", "cancelled"):
            # Read after the limit: a dropped turn waited out its timeout, or events were lost.
            return f"KV says {self.kv_status} (by diagnosis time): finished late, or events lost"
        if self.kv_status is None:
            return "in the API's index only (no orchestrator state)"
        if not (self.view or {}).get("agents"):
            return "orchestrator state, no events (the create's commands were lost)"
        return f"stalled, KV status {self.kv_status} (a turn or its commands were dropped)"

    def describe(self) -> str:
        """One line: id, last known status and agents' states (for failure reports)."""
        view = self.view or {}
        agents = ", ".join(f"{a.get('id')}={a.get('status')}" for a in view.get("agents") or [])
        age = time.time() - self.submitted_at
        return (
            f"{self.run_id or '(not created)'} [{self.question[:24]}] status={self.status} "
            f"agents=({agents}) after {age:.0f} s; create attempts={self.attempts} "
            f"via={self.created_via or '-'} errors={[e[:90] for e in self.create_errors[-3:]]} "
            f"message={view.get('message', '')!r} kv_status={self.kv_status}"
        )


_AMBIGUOUS = (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError,
              httpx.WriteError)  # fmt: skip
"""The request may have reached the API: the run may exist."""


class ApiDriver:
    """A client of the API replicas: creates runs and follows them to their end.

    Each create carries an ``Idempotency-Key`` (the run's unique question): when its
    outcome is unknown (the connection broke after the request was sent) or the API
    answered 5xx, the same request is sent again and starts or finds the same run, so a
    run is never made twice by a retry. A refused connection is retried on the next
    replica at once (nothing was sent).

    A run is followed over SSE (``GET /v1/runs/{id}/events``, resumed with
    ``Last-Event-ID`` on another replica when a connection breaks) until
    ``run_finished``; then ``GET /v1/runs/{id}`` gives its result. (Polling
    ``GET /v1/runs/{id}`` instead costs the API a JetStream consumer per call on a
    running run, and the events stream allows 1000 at a time.)
    """

    def __init__(self, urls: list[str], headers: dict[str, str], *, timeout: float = 30.0) -> None:
        self.urls = list(urls)
        self.client = httpx.AsyncClient(
            headers=headers, timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )  # fmt: skip
        self._turn = 0
        self.counts: Counter[str] = Counter()
        """Events worth reporting: ``refused``, ``ambiguous``, ``http_<code>``,
        ``sse_broken``, ``sse_http_<code>``, ``get_http_<code>``."""

    async def close(self) -> None:
        await self.client.aclose()

    def _next_url(self) -> str:
        self._turn += 1
        return self.urls[self._turn % len(self.urls)]

    async def create(
        self, outcome: RunOutcome, config: dict[str, Any], *, start: int = 0,
        give_up_after: float = 120.0,
    ) -> RunOutcome:  # fmt: skip
        """Create the run for ``outcome.question``; retries until ``give_up_after`` s."""
        deadline = time.monotonic() + give_up_after
        body = {"question": outcome.question, "config": config}
        index = start
        while time.monotonic() < deadline:
            url = self.urls[index % len(self.urls)]
            index += 1
            outcome.attempts += 1
            try:
                # The same key on every attempt: a retry starts or finds the same run.
                response = await self.client.post(
                    f"{url}/v1/runs", json=body, headers={"Idempotency-Key": outcome.question}
                )
            except httpx.ConnectError as error:  # nothing was sent: retry elsewhere
                self.counts["refused"] += 1
                outcome.create_errors.append(f"{url}: {type(error).__name__}")
                await asyncio.sleep(0.1 if index % len(self.urls) else 0.5)
                continue
            except _AMBIGUOUS as error:
                # The create was sent, its outcome is unknown: send it again (same key).
                self.counts["ambiguous"] += 1
                outcome.create_errors.append(f"{url}: {type(error).__name__}")
                await asyncio.sleep(0.2)
                continue
            if response.status_code == 201:
                outcome.run_id = response.json()["id"]
                outcome.created_via = "201" if outcome.attempts == 1 else "201 again"
                return outcome
            self.counts[f"http_{response.status_code}"] += 1
            outcome.create_errors.append(
                f"{url}: HTTP {response.status_code} {response.text[:120]}"
            )
            if response.status_code in (401, 403):
                raise AssertionError(f"create refused: {outcome.create_errors[-1]}")
            if response.status_code < 500:  # refused: a client gives up (the run is lost)
                return outcome
            # 502/503: the API dropped its index entry; no run is visible to us. Retry.
            await asyncio.sleep(0.5 + random.random())
        return outcome

    async def fetch(self, outcome: RunOutcome, tries: int = 10) -> None:
        """Refresh ``outcome.view`` from ``GET /v1/runs/{id}`` (errors keep the old one)."""
        assert outcome.run_id is not None
        for _ in range(tries):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await self.client.get(f"{self._next_url()}/v1/runs/{outcome.run_id}")
                if response.status_code == 200:
                    outcome.view = response.json()
                    outcome.seen_at = time.time()
                    return
                self.counts[f"get_http_{response.status_code}"] += 1
            await asyncio.sleep(0.5)

    async def wait_finished(self, outcome: RunOutcome, until: float) -> bool:
        """Follow the run's SSE events until ``run_finished`` or wall time ``until``."""
        assert outcome.run_id is not None
        last_id: str | None = None
        while time.time() < until:
            url = self._next_url()
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with asyncio.timeout(max(0.1, until - time.time())):
                    async with self.client.stream(
                        "GET", f"{url}/v1/runs/{outcome.run_id}/events", headers=headers
                    ) as response:
                        if response.status_code == 204:
                            return True  # nothing after last_id: it is over
                        if response.status_code != 200:
                            self.counts[f"sse_http_{response.status_code}"] += 1
                            await asyncio.sleep(1.0)
                            continue
                        kind = None
                        async for line in response.aiter_lines():
                            if line.startswith("id:"):
                                last_id = line[3:].strip()
                            elif line.startswith("event:"):
                                kind = line[6:].strip()
                            elif not line and kind == "run_finished":
                                return True
            except TimeoutError:
                return False
            except httpx.HTTPError:
                self.counts["sse_broken"] += 1
                await asyncio.sleep(0.3)
        return False

    async def run(
        self, outcome: RunOutcome, config: dict[str, Any], *, start: int, limit: float,
        created: asyncio.Future | None = None,
    ) -> RunOutcome:  # fmt: skip
        """Create, follow to the end (at most ``limit`` s after submission), fetch."""
        try:
            await self.create(outcome, config, start=start, give_up_after=limit)
        finally:
            if created is not None:
                created.set_result(None)
        if outcome.run_id is None:
            return outcome
        await self.wait_finished(outcome, outcome.submitted_at + limit)
        await self.fetch(outcome)
        return outcome


async def diagnose(cluster: Cluster, outcomes: list[RunOutcome]) -> None:
    """Fill in ``kv_status`` of the runs that did not complete: the orchestrators' own
    record tells a dropped turn (``running``) from lost run events (``completed`` in
    KV, but no ``run_finished`` event) and from a create that never reached one (None).
    """
    unfinished = [o for o in outcomes if o.run_id and o.status != "completed"]
    if not unfinished:
        return
    nc = await connect_as(cluster, "api")
    try:
        kv = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
        for outcome in unfinished:
            outcome.kv_status = await run_status(kv, outcome.run_id)
    finally:
        await nc.close()


async def drive_runs(
    driver: ApiDriver,
    config: dict[str, Any],
    count: int,
    rate: float,
    *,
    tag: str,
    limit: float,
    submitted: asyncio.Event | None = None,
) -> list[RunOutcome]:
    """Submit ``count`` runs, ``rate`` per second, alternating replicas; follow them all.

    Returns every outcome once each run is over or ``limit`` seconds have passed since
    its submission (then its view is the last known state); a completed run's
    ``problems`` say what is wrong with its result. ``submitted`` is set once every
    create has been answered (or given up on).
    """
    expected = team3_expected()
    loop = asyncio.get_running_loop()
    outcomes: list[RunOutcome] = []
    tasks: list[asyncio.Task] = []
    created: list[asyncio.Future] = []
    started = time.monotonic()
    try:
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            outcome = RunOutcome(
                question=f"[{tag}-{index:05d}] What is the capital of Australia?",
                submitted_at=time.time(),
            )
            outcomes.append(outcome)
            created.append(loop.create_future())
            tasks.append(asyncio.create_task(
                driver.run(outcome, config, start=index, limit=limit, created=created[-1])
            ))  # fmt: skip
        await asyncio.gather(*created)
    finally:
        if submitted is not None:
            submitted.set()
    await asyncio.gather(*tasks)
    for outcome in outcomes:
        if outcome.status == "completed":
            outcome.problems = check_result(outcome.view or {}, expected)
    return outcomes
