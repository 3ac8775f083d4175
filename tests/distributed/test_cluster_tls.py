"""NATS of the cluster stand-in speaks TLS only, as production (components/nats-tls).

- every service connected over TLS, trusting the cluster's private CA (``NATS_CA_FILE``),
  and the nodes require TLS of clients and mutual TLS on routes;
- a plaintext client is refused, even with the right password, on every node and on the
  balancer; a client that does not trust the CA, or has a wrong password, gets nothing;
- a nats-server without the route credentials, or with them but a certificate of another
  CA, cannot join the cluster; the same server with both does (so the refusals are the
  credentials', not a broken probe);
- the certificates verify whichever tool made them (``cryptography`` or ``openssl``), and
  the users' passwords nats-server gets are ``$2a$`` bcrypt hashes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from scripts import cluster as stand_in  # noqa: E402  (scripts/cluster.py: TLS files, node configs)
from tests.support.cluster_helpers import Cluster, connect_as

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The smallest full cluster: 3 NATS nodes, 1 orchestrator, 1 worker (TLS default)."""
    cluster = Cluster(
        tmp_path_factory.mktemp("tls"), ["chatcompletion"], workers_per_provider=1,
        orchestrators=1, stream_replicas=3, with_extras=False,
    ).up(timeout=120)  # fmt: skip
    try:
        yield cluster
    finally:
        cluster.down()


def _monitor(cluster: Cluster, node: str, path: str) -> dict:
    base = cluster.procs[node].health.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{base}/{path}", timeout=5) as response:
        return json.load(response)


def _nodes(cluster: Cluster) -> list[str]:
    return cluster.names("nats")


# -- what runs --------------------------------------------------------------------------------


def test_nodes_require_tls_and_every_service_connected_over_it(tls_cluster: Cluster) -> None:
    assert tls_cluster.url.startswith("tls://")
    ca = str(tls_cluster.ca_file)
    for name in tls_cluster.names("orchestrator") + tls_cluster.names("worker"):
        assert tls_cluster.procs[name].env["NATS_CA_FILE"] == ca, name
    users = set()
    for node in _nodes(tls_cluster):
        varz = _monitor(tls_cluster, node, "varz")
        assert varz["tls_required"] and varz["auth_required"], node
        assert varz["cluster"]["tls_required"] and varz["cluster"]["tls_verify"], node
        for connection in _monitor(tls_cluster, node, "connz?auth=true")["connections"]:
            assert connection.get("tls_version"), connection
            users.add(connection["authorized_user"])
        # Both peers are routed (routes authenticated by certificate and password).
        peers = {r["remote_name"] for r in _monitor(tls_cluster, node, "routez")["routes"]}
        assert peers == set(_nodes(tls_cluster)) - {node}, node
    assert {"orchestrator", "worker-chatcompletion"} <= users


def test_nats_server_holds_bcrypt_hashes_not_passwords(tls_cluster: Cluster) -> None:
    env = dict(tls_cluster.procs["nats-1"].env)
    # The route password is plain (its node config holds it anyway: ROUTE_PASSWORD_ENV).
    assert env.pop(stand_in.ROUTE_PASSWORD_ENV) == tls_cluster.route_password
    assert len(env) == len(tls_cluster.passwords)
    for variable, value in env.items():
        assert value.startswith(f"$2a${stand_in.BCRYPT_COST:02d}$"), variable
    route_password = tls_cluster.route_password
    assert route_password
    for conf in (tls_cluster.dir / "nats").glob("*.conf"):
        text = conf.read_text()
        assert not [p for p in tls_cluster.passwords.values() if p in text], conf
        # Only the route URLs carry the route password: a node sends it when it dials.
        expected = 0 if conf.name == "auth.conf" else stand_in.NATS_NODES
        assert text.count(route_password) == expected, conf


# -- clients ------------------------------------------------------------------------------------


def _plaintext_connect(port: int, user: str, password: str) -> tuple[dict, bytes, bool]:
    """Speak the NATS protocol without TLS: (the server's INFO, what it sends back,
    whether it closed the connection within 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        stream = sock.makefile("rb")
        line = stream.readline()
        assert line.startswith(b"INFO "), line
        info = json.loads(line[5:])
        connect = {"verbose": False, "pedantic": False, "user": user, "pass": password}
        with contextlib.suppress(ConnectionError):  # closed already: refused all the same
            sock.sendall(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        answer, closed = b"", False
        try:
            while chunk := sock.recv(4096):
                answer += chunk
            closed = True
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            pass
        return info, answer, closed


def test_a_plaintext_client_is_refused_even_with_the_right_password(tls_cluster: Cluster) -> None:
    password = tls_cluster.passwords["api"]
    ports = [tls_cluster.procs["nats-lb"].port]
    ports += [tls_cluster.procs[n].port for n in _nodes(tls_cluster)]
    for port in ports:
        info, answer, closed = _plaintext_connect(port, "api", password)
        assert info["tls_required"] is True, port
        # The server waits for a TLS handshake: plaintext gets the connection closed,
        # never a PONG (which would mean "logged in").
        assert closed, port
        assert b"PONG" not in answer and b"+OK" not in answer, (port, answer)


async def test_a_client_must_trust_the_ca_and_know_its_password(tls_cluster: Cluster) -> None:
    once = {"allow_reconnect": False, "max_reconnect_attempts": 0, "connect_timeout": 5}
    url = tls_cluster.url_for("api")
    # nats:// or tls:// without the CA: the default trust store refuses the certificate.
    for plain in (url, url.replace("tls://", "nats://", 1)):
        with pytest.raises(ssl.SSLCertVerificationError):
            await nats.connect(plain, **once)
    wrong = url.replace(tls_cluster.passwords["api"], "pwrong-password")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(wrong, tls=tls_cluster.client_tls(), **once)
    # With both: in (the services' way of connecting).
    nc = await nats.connect(**tls_cluster.connect_options("api"), **once)
    try:
        assert nc.connected_url.scheme == "tls"
        assert nc.is_connected
    finally:
        await nc.close()
    nc = await connect_as(tls_cluster, "orchestrator")
    await nc.close()


# -- routes -------------------------------------------------------------------------------------


def _start_rogue(
    cluster: Cluster, folder: Path, *, route_password: str | None, tls: stand_in.TlsFiles
) -> tuple[subprocess.Popen, int, Path]:
    """A nats-server (no JetStream) dialing nats-1's route port; (process, monitor, log)."""
    folder.mkdir(parents=True)
    shutil.copy(cluster.dir / "nats" / "auth.conf", folder / "auth.conf")
    target = cluster.procs["nats-1"]
    credentials = f"{stand_in.ROUTE_USER}:{route_password}@" if route_password else ""
    monitor = stand_in.free_port()
    (folder / "rogue.conf").write_text(
        stand_in.node_conf(
            "rogue", client=stand_in.free_port(), route=stand_in.free_port(), monitor=monitor,
            routes=[f"nats-route://{credentials}127.0.0.1:{target.route_port}"],
            store=None, tls=tls,
        )
    )  # fmt: skip
    # The users' hashes (auth.conf needs them) and a route password of its own.
    env = {**os.environ, **target.env}
    env[stand_in.ROUTE_PASSWORD_ENV] = route_password or "pnone"
    log = folder / "rogue.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [stand_in.nats_binary(), "-c", str(folder / "rogue.conf")],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return process, monitor, log


def _routes_of(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/routez", timeout=5) as response:
        return {r.get("remote_name") for r in json.load(response)["routes"]}


def _wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(
    ("case", "refusal"),
    [
        ("wrong password", "authentication error"),
        ("no credentials", "authentication error"),
        # The right password, and the cluster's CA trusted, but its own certificate is
        # of another CA: what someone who read a node's config could still try.
        ("certificate of another CA", "TLS route handshake error"),
    ],
)
def test_a_node_without_the_route_credentials_cannot_join(
    tls_cluster: Cluster, tmp_path: Path, case: str, refusal: str
) -> None:
    password = {"wrong password": "pwrong-route", "no credentials": None}.get(
        case, tls_cluster.route_password
    )
    tls = tls_cluster.tls_files
    if case == "certificate of another CA":
        other = stand_in.write_tls_files(tmp_path / "other-ca", common_name="another-ca")
        tls = stand_in.TlsFiles(ca=tls.ca, cert=other.cert, key=other.key)
    node_log = tls_cluster.dir / "logs" / "nats-1.log"
    seen = node_log.stat().st_size
    process, monitor, log = _start_rogue(
        tls_cluster, tmp_path / "rogue", route_password=password, tls=tls
    )

    def refusals() -> list[str]:
        with node_log.open("rb") as read:
            read.seek(seen)
            lines = read.read().decode(errors="replace").splitlines()
        return [line for line in lines if refusal in line and "rid:" in line]

    try:
        # nats-1 refuses the route over and over (a route retries): wait, then look.
        refused = _wait_for(lambda: len(refusals()) >= 2, 30)
        assert refused, (node_log.read_text(errors="replace")[-2000:],
                         log.read_text(errors="replace")[-2000:])  # fmt: skip
        assert process.poll() is None, "the rogue node exited instead of trying"
        assert _routes_of(monitor) == set()
        for node in _nodes(tls_cluster):
            assert "rogue" not in {
                r["remote_name"] for r in _monitor(tls_cluster, node, "routez")["routes"]
            }, node
    finally:
        process.terminate()
        process.wait(10)


def test_a_node_with_the_route_credentials_and_certificate_joins(
    tls_cluster: Cluster, tmp_path: Path
) -> None:
    """The control of the test above: the same rogue with what a node holds gets in."""
    process, monitor, log = _start_rogue(
        tls_cluster, tmp_path / "member", route_password=tls_cluster.route_password,
        tls=tls_cluster.tls_files,
    )  # fmt: skip
    try:
        joined = _wait_for(lambda: "nats-1" in _routes_of(monitor), 30)
        assert joined, log.read_text(errors="replace")[-3000:]
    finally:
        process.terminate()
        process.wait(10)


# -- the material ---------------------------------------------------------------------------------


@pytest.mark.parametrize("use_openssl", [False, True], ids=["cryptography", "openssl"])
def test_certificates_verify_for_loopback_and_only_under_their_ca(
    tmp_path: Path, use_openssl: bool
) -> None:
    if use_openssl and not shutil.which("openssl"):
        pytest.skip("no openssl command")
    files = stand_in.write_tls_files(tmp_path / "tls", use_openssl=use_openssl)
    assert files.key.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in files.ca.parent.iterdir()) == [
        "ca.crt", "server.crt", "server.key"  # the CA key is not kept
    ]  # fmt: skip
    other = stand_in.write_tls_files(tmp_path / "other", common_name="another-ca")

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(files.cert, files.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(3):
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for host in ("127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                with files.client_context().wrap_socket(sock, server_hostname=host) as tls:
                    assert tls.recv(2) == b"ok"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with pytest.raises(ssl.SSLCertVerificationError):
                other.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
    finally:
        listener.close()
        thread.join(5)


def test_bcrypt_hashes_have_the_prefix_nats_server_reads() -> None:
    hashed = stand_in.bcrypt_hash("psecret", cost=4)
    assert hashed is not None, "no bcrypt tool: the cluster runs with plain passwords"
    assert hashed.startswith("$2a$04$") and len(hashed) == 60
    assert stand_in.bcrypt_hash("psecret", cost=4) != hashed  # salted
