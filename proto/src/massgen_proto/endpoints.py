"""Which model endpoints a run may use in a shared deployment: the operator's, not a tenant's.

A worker sends the organisation's provider key (from its environment) to whatever
endpoint a turn names. So in a deployment serving many tenants, a tenant must not be
able to point a keyed provider at a host of its choosing. The rule, applied by the API
(422 before a run starts) and again by the worker (the key is never sent):

- no ``base_url``: the provider's own endpoint, always allowed;
- ``base_url`` with the tenant's own ``api_key``: allowed (their key, their host);
- ``base_url`` without a key: allowed only on a host the operator lists for that backend
  type, for keyed providers (the organisation's key would go there) and keyless ones
  (self-hosted models: no reaching arbitrary hosts from inside the cluster) alike.

The allowlist comes from ``MASSGEN_PROVIDER_ENDPOINTS``:
``vllm=vllm.models.svc:8000,vllm-b:8000;openai=gateway.corp.example`` (backend type =
comma-separated ``host`` or ``host:port``). The variable being unset switches the policy
off: one machine, one user (the embedded CLI), where the user owns every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .providers import BACKENDS

__all__ = ["ENV_VAR", "EndpointPolicy"]

ENV_VAR = "MASSGEN_PROVIDER_ENDPOINTS"


def _host(url: str) -> tuple[str, str]:
    """``(host, host:port)`` of a URL, lowercased (port omitted when the URL has none)."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return host, f"{host}:{port}" if port else host


@dataclass(frozen=True)
class EndpointPolicy:
    """The operator's allowlist of endpoints per backend type (``enabled`` False: off)."""

    allowed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    enabled: bool = True

    @classmethod
    def parse(cls, text: str | None) -> EndpointPolicy:
        """Parse ``MASSGEN_PROVIDER_ENDPOINTS``; None: the policy is off.

        Raises:
            ValueError: malformed text or an unknown backend type (named).
        """
        if text is None:
            return cls(enabled=False)
        allowed: dict[str, frozenset[str]] = {}
        for item in filter(None, (part.strip() for part in text.split(";"))):
            kind, sep, hosts = item.partition("=")
            kind = kind.strip()
            if not sep or not kind:
                raise ValueError(f"{ENV_VAR}: {item!r} is not 'type=host[:port],...'")
            if kind not in BACKENDS:
                raise ValueError(f"{ENV_VAR}: unknown backend type {kind!r}")
            names = {_host(h.strip())[1] for h in hosts.split(",") if h.strip()}
            allowed[kind] = allowed.get(kind, frozenset()) | frozenset(names)
        return cls(allowed=allowed)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EndpointPolicy:
        env = os.environ if env is None else env
        return cls.parse(env.get(ENV_VAR))

    def problem(self, backend_type: str, base_url: str | None, own_key: bool) -> str | None:
        """Why this endpoint may not be used, or None when it may."""
        if not self.enabled or not base_url or own_key:
            return None
        host, host_port = _host(base_url)
        allowed = self.allowed.get(backend_type, frozenset())
        if host in allowed or host_port in allowed:
            return None
        spec = BACKENDS.get(backend_type)
        listed = ", ".join(sorted(allowed)) or f"none; the operator lists hosts in {ENV_VAR}"
        if spec is not None and spec.api_key_env:
            return (
                f"base_url host {host_port!r} is not an endpoint this deployment allows for "
                f"{backend_type!r} with the organisation's key (allowed: {listed}); give your "
                "own backend.api_key to use another endpoint"
            )
        return (
            f"base_url host {host_port!r} is not an endpoint this deployment allows for "
            f"{backend_type!r} (allowed: {listed}); give your own backend.api_key to use "
            "another endpoint"
        )

    def problems(self, config: object) -> list[tuple[str, str]]:
        """``(key_path, message)`` for every agent of a ``RunConfig`` that breaks the rule."""
        found = []
        for index, agent in enumerate(getattr(config, "agents", [])):
            backend = agent.backend
            why = self.problem(backend.type, backend.base_url, bool(backend.api_key))
            if why:
                found.append((f"agents[{index}].backend.base_url", why))
        return found
