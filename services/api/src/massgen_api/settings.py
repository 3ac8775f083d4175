"""API settings, validated at start-up.

Every value can come from the environment (``ApiSettings.from_env``) so the same
image runs in the embedded launcher, docker compose and Kubernetes:

- ``NATS_URL``                        NATS server(s)
- ``NATS_USER`` / ``NATS_PASSWORD``   NATS login (the API's own user; none by default)
- ``MASSGEN_API_HOST`` / ``_PORT``    where uvicorn listens (127.0.0.1:8080)
- ``MASSGEN_API_TEAMS_DIR``           folder of team YAML files (``<name>.yaml``)
- ``MASSGEN_API_TOKENS``              ``tenant:sha256hex,tenant2:sha256hex`` (hashed bearer tokens)
- ``MASSGEN_API_TOKENS_FILE``         YAML mapping ``sha256hex: tenant`` (same meaning)
- ``MASSGEN_API_SINGLE_USER``         ``1``: serve without tokens (one-machine use only)
- ``MASSGEN_PROVIDER_ENDPOINTS``      the operator's endpoints per backend type (see
                                      ``massgen_proto.endpoints``); unset: no endpoint policy
- ``MASSGEN_API_MAX_BODY_BYTES``      larger request bodies get 413
- ``MASSGEN_API_STREAM_REPLICAS``     replicas of the streams and buckets it creates (1)
- ``MASSGEN_API_ALLOW_COMMAND_NETWORK`` ``1``: accept configs whose commands ask for the
                                      network (``command_line_docker_network_mode``);
                                      the gateways need ``MASSGEN_GATEWAY_EXEC_NETWORK`` too
- ``MASSGEN_API_ALLOW_HOST_PATHS``    ``1``: accept configs that name paths on the server
                                      (``massgen_proto.host_paths``; always for one user)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from massgen_kit.health import nats_url_with_credentials
from massgen_kit.jetstream import StreamSettings
from massgen_proto.catalog import McpCatalog
from massgen_proto.endpoints import ENV_VAR as ENDPOINTS_VAR
from massgen_proto.endpoints import EndpointPolicy
from massgen_proto.host_paths import ALLOW_ENV as ALLOW_HOST_PATHS_ENV
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from .usage import DailyLimits

__all__ = ["ApiSettings"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ApiSettings(BaseModel):
    """How one API process runs."""

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    """Kept out of ``repr`` and logs; joined to ``nats_url`` only at connect time."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    teams_dir: Path | None = None
    """Folder of named team configs (``*.yaml`` / ``*.yml`` / ``*.json``); None: no teams."""
    tokens: dict[str, str] = Field(default_factory=dict)
    """sha256 hex digest of a bearer token -> tenant. Empty: the API refuses to start,
    unless ``single_user``."""
    single_user: bool = False
    mcp_catalog: str | None = None
    """``MASSGEN_MCP_CATALOG``: the stdio MCP servers tenants' configs may name (the same
    file the gateway mounts); None: no catalog."""
    provider_endpoints: str | None = None
    """``MASSGEN_PROVIDER_ENDPOINTS``: which hosts tenants' configs may point a provider at
    without their own key; None: no such policy (one-machine use)."""
    """Serve without tokens, every caller being tenant ``public``: for one machine (the
    embedded launcher), never for a shared deployment."""
    tenant_daily_tokens: int | None = Field(default=None, gt=0)
    """``MASSGEN_API_TENANT_DAILY_TOKENS``: tokens each tenant's runs may use per UTC day
    (a new run past it gets 429); None: no limit."""
    tenant_daily_cost_usd: float | None = Field(default=None, gt=0)
    """``MASSGEN_API_TENANT_DAILY_COST_USD``: the same in US dollars."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Request bodies above this size are refused with 413."""
    request_timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for the orchestrator's reply to a create or cancel."""
    completion_timeout: float = Field(default=1800.0, gt=0)
    """Seconds a non-streaming chat completion waits for the run to finish."""
    sse_heartbeat: float = Field(default=15.0, gt=0)
    """Seconds between SSE keep-alive comments when no event arrives."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    memory_streams: bool = False
    """Keep streams and buckets in memory (tests, benchmarks); file storage otherwise."""
    allow_command_network: bool = False
    """Accept tenants' configs whose commands ask for the network (``bridge``/``host``);
    off, such a config gets 422 naming the key."""
    allow_host_paths: bool = False
    """Accept tenants' configs that name paths on the server (absolute workspaces,
    context paths, local uploads, custom tool files: ``massgen_proto.host_paths``).
    Always on for a single user (their own machine); off, such a config gets 422."""
    page_size: int = Field(default=20, ge=1, le=500)
    """Default page size of ``GET /v1/runs``."""
    log_level: str = "info"

    @field_validator("tokens")
    @classmethod
    def _hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for digest, tenant in value.items():
            if not _SHA256.match(digest):
                raise ValueError(
                    f"token key {digest[:12]!r}... must be the lowercase sha256 hex digest of the "
                    "token (see massgen_api.auth.hash_token)"
                )
            if not tenant:
                raise ValueError("every token needs a non-empty tenant")
        return value

    @model_validator(mode="after")
    def _login(self) -> ApiSettings:
        self.nats_connect_url()  # a password without a user, or characters a URL cannot carry
        return self

    @property
    def catalog(self) -> McpCatalog:
        return McpCatalog.load(self.mcp_catalog)

    @field_validator("mcp_catalog")
    @classmethod
    def _catalog(cls, value: str | None) -> str | None:
        McpCatalog.load(value)  # an unreadable or malformed catalog fails at start-up
        return value

    @property
    def host_paths_allowed(self) -> bool:
        """Tenants' configs may name paths on the server (one user's own machine, or
        an operator who trusts its tenants with the gateway's files)."""
        return self.single_user or self.allow_host_paths

    @property
    def endpoint_policy(self) -> EndpointPolicy:
        # Unset means off only for one user on one machine; an API serving tenants keeps
        # the policy on (providers' own endpoints only) until the operator lists more.
        if self.provider_endpoints is None and not self.single_user:
            return EndpointPolicy.parse("")
        return EndpointPolicy.parse(self.provider_endpoints)

    @field_validator("provider_endpoints")
    @classmethod
    def _endpoints(cls, value: str | None) -> str | None:
        EndpointPolicy.parse(value)  # a malformed allowlist fails at start-up
        return value

    @property
    def auth_enabled(self) -> bool:
        """True when bearer tokens are configured."""
        return bool(self.tokens)

    def check_auth(self) -> None:
        """Fail closed: refuse to serve with no tokens unless single-user mode was asked for.

        Raises:
            ValueError: no tokens and not ``single_user``; the message says what to set.
        """
        if not self.tokens and not self.single_user:
            raise ValueError(
                "no API tokens configured: set MASSGEN_API_TOKENS (tenant:sha256hex,...) or "
                "MASSGEN_API_TOKENS_FILE; to serve one machine without auth, set "
                "MASSGEN_API_SINGLE_USER=1 (massgen-api --single-user)"
            )

    def nats_connect_url(self) -> str:
        """``nats_url`` with the user and password in it (never log this)."""
        password = self.nats_password.get_secret_value() if self.nats_password else None
        return nats_url_with_credentials(self.nats_url, self.nats_user, password)

    @property
    def daily_limits(self) -> DailyLimits:
        """What each tenant may use per UTC day."""
        return DailyLimits(self.tenant_daily_tokens, self.tenant_daily_cost_usd)

    def stream_settings(self) -> StreamSettings:
        """The JetStream durability settings these values stand for."""
        return StreamSettings(replicas=self.stream_replicas, memory=self.memory_streams)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ApiSettings:
        """Settings from ``MASSGEN_API_*`` / ``NATS_URL`` variables, then ``overrides``.

        Raises:
            pydantic.ValidationError / ValueError: a value is malformed (names the variable).
        """
        env = os.environ if env is None else env
        values: dict = {}
        for key in ("NATS_URL", "NATS_USER", "NATS_PASSWORD"):
            if env.get(key):
                values[key.lower()] = env[key]
        for key in (
            "host", "port", "teams_dir", "max_body_bytes", "stream_replicas", "log_level",
            "tenant_daily_tokens", "tenant_daily_cost_usd",
        ):  # fmt: skip
            name = f"MASSGEN_API_{key.upper()}"
            if env.get(name):
                values[key] = env[name]
        tokens: dict[str, str] = {}
        if env.get("MASSGEN_API_TOKENS_FILE"):
            loaded = yaml.safe_load(Path(env["MASSGEN_API_TOKENS_FILE"]).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError("MASSGEN_API_TOKENS_FILE must hold a mapping sha256hex: tenant")
            tokens.update({str(k): str(v) for k, v in loaded.items()})
        for item in filter(None, (env.get("MASSGEN_API_TOKENS") or "").split(",")):
            tenant, sep, digest = item.strip().partition(":")
            if not sep:
                raise ValueError("MASSGEN_API_TOKENS entries are tenant:sha256hex")
            tokens[digest] = tenant
        if tokens:
            values["tokens"] = tokens
        if env.get("MASSGEN_MCP_CATALOG"):
            values["mcp_catalog"] = env["MASSGEN_MCP_CATALOG"]
        if env.get(ENDPOINTS_VAR) is not None:
            values["provider_endpoints"] = env[ENDPOINTS_VAR]
        if (env.get("MASSGEN_API_SINGLE_USER") or "").strip().lower() in ("1", "true", "yes"):
            values["single_user"] = True
        if env.get("MASSGEN_API_ALLOW_COMMAND_NETWORK"):
            values["allow_command_network"] = env["MASSGEN_API_ALLOW_COMMAND_NETWORK"]
        if env.get(ALLOW_HOST_PATHS_ENV):
            values["allow_host_paths"] = env[ALLOW_HOST_PATHS_ENV]
        values.update(overrides)
        return cls(**values)
