"""Downloading a config's ``upload_files`` URL (a sound or a document) for a worker.

A worker never fetches a URL a tenant wrote: it holds the provider keys and sits inside
the cluster. The gateway fetches it once per run and agent into the run's folder
(``<run>/.uploads/<label>/<index>``, never a workspace), then serves it in chunks like a
local upload. The rules, each failure a ``MediaError`` naming the URL:

- ``http``/``https`` only; at most ``MAX_REDIRECTS`` redirects, each hop checked again;
- every address the host resolves to must be public (not loopback, private, link-local,
  multicast or reserved) unless ``GatewaySettings.upload_url_private`` allows it; the
  connection goes to the address that was checked (the name is resolved once), so a
  second lookup cannot swap in another (DNS rebinding). TLS still verifies the name;
- no more than the agent's size limit (``Content-Length`` first, then the bytes read);
- what arrived must be one of the kinds asked for, by its first bytes (``sniff``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from .media_files import MediaError, sniff

__all__ = ["MAX_REDIRECTS", "fetch_upload", "fetched_path"]

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def fetched_path(run_dir: Path, label: str, index: int) -> Path:
    """Where upload ``index`` of agent ``label`` is kept once fetched."""
    return run_dir / ".uploads" / label / str(index)


def fetch_upload(
    url: str,
    target: Path,
    limit: int,
    kinds: frozenset[str],
    *,
    allow_private: bool,
    timeout: float,
) -> Path:
    """``target``, downloading ``url`` into it first unless an earlier call did.

    Raises:
        MediaError: the URL breaks a rule of the module docstring (names the URL).
    """
    with _lock_for(target):
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                _download(url, out, limit, kinds, allow_private, timeout)
            os.replace(staged, target)
        except BaseException:
            os.unlink(staged)
            raise
        return target


def _lock_for(target: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(target, threading.Lock())


def _download(
    url: str, out: BinaryIO, limit: int, kinds: frozenset[str], allow_private: bool, timeout: float
) -> None:
    current = url
    with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            request = _pinned_request(client, url, current, allow_private)
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as error:
                why = str(error) or type(error).__name__
                raise MediaError(f"{url}: cannot be fetched: {why}") from None
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise MediaError(f"{url}: the server answered HTTP {response.status_code}")
                _receive(url, response, out, limit, kinds)
                return
            finally:
                response.close()
    raise MediaError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _pinned_request(
    client: httpx.Client, url: str, current: str, allow_private: bool
) -> httpx.Request:
    """A GET of ``current`` sent to the checked address of its host."""
    parts = urlsplit(current)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError(f"{url}: only http(s) URLs with a host can be fetched ({current})")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise MediaError(f"{url}: bad port in {current}") from None
    address = _checked_address(url, host, port, allow_private)
    netloc = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{netloc}:{port}").geturl()
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    # The TLS handshake names (and verifies) the host, not the address connected to.
    return client.build_request(
        "GET", pinned, headers={"Host": host_header}, extensions={"sni_hostname": host}
    )


def _checked_address(url: str, host: str, port: int, allow_private: bool) -> str:
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal address: no lookup
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            why = error.strerror or type(error).__name__
            raise MediaError(f"{url}: host {host!r} does not resolve ({why})") from None
        addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise MediaError(
                    f"{url}: host {host!r} is at {address}, not a public address; the "
                    "gateway fetches uploads from public hosts only "
                    "(MASSGEN_GATEWAY_UPLOAD_URL_PRIVATE allows others)"
                )
    return addresses[0]


def _mb(size: int) -> str:
    return f"{size / 1048576:.1f} MB"


def _receive(
    url: str, response: httpx.Response, out: BinaryIO, limit: int, kinds: frozenset[str]
) -> None:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise MediaError(
            f"{url}: {_mb(int(declared))} is over the limit of {_mb(limit)} "
            "(backend.media_max_file_size_mb)"
        )
    size = 0
    head = b""
    write = out.write
    for piece in response.iter_bytes():
        size += len(piece)
        if size > limit:
            raise MediaError(
                f"{url}: more than the limit of {_mb(limit)} (backend.media_max_file_size_mb)"
            )
        if len(head) < 16:
            head += piece[: 16 - len(head)]
        write(piece)
    mime = sniff(head)
    if mime is None or mime not in kinds:
        what = ", ".join(sorted(kinds))
        raise MediaError(f"{url}: not a supported file ({what}), by its content")
