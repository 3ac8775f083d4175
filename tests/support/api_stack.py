"""Helpers for the HTTP API tests: a whole stack: real nats-server, orchestrator and worker services
(in a background event loop), the scripted fake model, and a real uvicorn server on
127.0.0.1 serving ``create_app(settings)`` in its own thread.

Tests are plain synchronous functions speaking HTTP (httpx, the openai client,
schemathesis, a browser).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
import yaml
from massgen_api.app import create_app
from massgen_api.auth import hash_token
from massgen_api.settings import ApiSettings
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

from tests.support.fakes.openai_server import FakeOpenAIServer

TOKENS = {"alice-token": "acme", "bob-token": "globex"}
"""Bearer token -> tenant configured on every test API."""
ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


class LoopThread:
    """An asyncio loop in a daemon thread, for services the test drives from sync code."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 30.0) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class UvicornThread:
    """A real uvicorn server on 127.0.0.1 (free port) in its own thread."""

    def __init__(self, app, name: str = "api-uvicorn") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> UvicornThread:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self.server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up (see the log above)")
            deadline.wait(0.05)
        raise RuntimeError("uvicorn did not start in time")

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self.sock.close()


def fast_worker_settings() -> WorkerSettings:
    return WorkerSettings(
        retry_base_delay=0.01, retry_max_delay=0.05, provider_retries=1,
        graceful_timeout=1.0, fetch_timeout=0.5,
    )  # fmt: skip


def team_config(fake: FakeOpenAIServer, models: list[str], **orchestrator: Any) -> dict[str, Any]:
    """A config with one chatcompletion agent per fake model (ids a1, a2, ...)."""
    return {
        "agents": [
            {
                "id": f"a{i + 1}",
                "backend": {
                    "type": "chatcompletion",
                    "model": model,
                    "base_url": fake.base_url,
                    "api_key": "sk-fake",
                },
            }  # fmt: skip
            for i, model in enumerate(models)
        ],
        "orchestrator": orchestrator,
    }


@dataclass
class ApiStack:
    url: str
    nats_url: str
    fake: FakeOpenAIServer
    services: LoopThread
    settings: ApiSettings

    def client(self, headers: dict[str, str] | None = ALICE, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers or {}, timeout=60, **kwargs)

    def config(self, models: list[str], **orchestrator: Any) -> dict[str, Any]:
        return team_config(self.fake, models, **orchestrator)


def write_teams(folder: Path, fake: FakeOpenAIServer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    teams = {
        "trio": {"description": "three fake agents", **team_config(fake, ["m1", "m2", "m3"])},
        "solo": team_config(fake, ["s1"]),
        "slow": team_config(fake, ["h1"]),
    }
    for name, config in teams.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


def start_api_stack(
    tmp_path: Path,
    nats_url: str,
    fake: FakeOpenAIServer,
    *,
    workers: bool = True,
    teams: bool = True,
    **settings: Any,
) -> tuple[ApiStack, Callable[[], None]]:
    """Start services + API; return the stack and its stop function."""
    loop = LoopThread("api-test-services")
    orchestrator = OrchestratorService(OrchestratorSettings(nats_url=nats_url, memory_streams=True))
    loop.run(orchestrator.start())
    worker = None
    if workers:
        worker = WorkerService(nats_url, ["chatcompletion"], fast_worker_settings())
        loop.run(worker.start())
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "memory_streams": True,
        "tokens": {hash_token(t): tenant for t, tenant in TOKENS.items()},
        "teams_dir": write_teams(tmp_path / "teams", fake) if teams else None,
        "sse_heartbeat": 1.0,
        "completion_timeout": 60.0,
    }
    if values["tokens"]:
        # The operator's own model host, as a deployment would list it: the policy is on
        # whenever tenants are served (massgen_proto.endpoints).
        host = urlsplit(fake.base_url).netloc
        values["provider_endpoints"] = ";".join(f"{t}={host}" for t in ("chatcompletion", "vllm"))
    values.update(settings)
    if not values.get("tokens"):
        values.setdefault("single_user", True)
    api_settings = ApiSettings(**values)
    server = UvicornThread(create_app(api_settings)).start()

    def stop() -> None:
        server.stop()
        if worker is not None:
            loop.run(worker.stop())
        loop.run(orchestrator.stop())
        loop.close()

    return ApiStack(server.url, nats_url, fake, loop, api_settings), stop


def read_sse(response: httpx.Response) -> list[dict[str, Any]]:
    """Parse an SSE response into ``{id, event, data}`` frames (data JSON-decoded)."""
    frames: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in current:
                frames.append(current)
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        if field == "data":
            current["data"] = json.loads(value) if value != "[DONE]" else value
        elif field in ("id", "event", "retry"):
            current[field] = value
    if "data" in current:
        frames.append(current)
    return frames


__all__ = [
    "ALICE",
    "BOB",
    "ApiStack",
    "LoopThread",
    "UvicornThread",
    "read_sse",
    "start_api_stack",
    "team_config",
]


@contextmanager
def running_gateway(nats_url: str, home: Path) -> Iterator[None]:
    """An mcp-gateway on its own loop, keeping runs under ``home / "runs"``."""
    from massgen_gateway.service import GatewayService
    from massgen_gateway.settings import GatewaySettings

    gateway = GatewayService(GatewaySettings(
        nats_url=nats_url, workspace_root=str(home / "runs"), home=str(home),
        memory_streams=True,
    ))  # fmt: skip
    loop = LoopThread("gateway")
    loop.run(gateway.start())
    try:
        yield
    finally:
        loop.run(gateway.stop())
        loop.close()
