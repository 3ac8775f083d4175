"""Per-tenant daily limits on tokens and dollars.

Every API replica hears every ``run_finished`` event (which carries what the run used,
from the orchestrator) and writes it to the usage bucket under the run's own key, so
replicas writing the same run write the same value once. Every replica watches the
bucket and keeps the sums of the current UTC day, which is what a new run is checked
against: a tenant over its limit gets 429 until the day turns.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from massgen_kit.jetstream import StreamSettings
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

log = structlog.get_logger("massgen.api.usage")

__all__ = ["DailyLimits", "TenantUsage", "day_of"]

_KEEP_SECONDS = 2 * 24 * 3600.0
"""The bucket keeps two days: today's entries and a margin across midnight."""


def day_of(ts: float) -> str:
    """The UTC day of epoch seconds ``ts``, ``YYYYMMDD``."""
    return time.strftime("%Y%m%d", time.gmtime(ts))


def _tenant_key(tenant: str) -> str:
    # Tenant names are free text; KV keys are not.
    return hashlib.sha256(tenant.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class DailyLimits:
    """What one tenant may use per UTC day (None: no limit)."""

    tokens: int | None = None
    cost_usd: float | None = None

    @property
    def any(self) -> bool:
        return self.tokens is not None or self.cost_usd is not None


class TenantUsage:
    """The usage bucket, and the current day's sums per tenant kept from watching it."""

    def __init__(self, limits: DailyLimits, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self._clock = clock
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._runs: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
        """``<tenant key>.<day>`` -> run id -> (tokens, dollars)."""

    async def start(self, js: JetStreamContext, stream_settings: StreamSettings) -> None:
        from massgen_kit.jetstream import ensure_bucket
        from massgen_proto.subjects import USAGE_BUCKET

        kv = await ensure_bucket(js, USAGE_BUCKET, stream_settings, max_age=_KEEP_SECONDS)
        self._kv = kv
        self._task = asyncio.create_task(self._watch(kv), name="usage-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def record(
        self, tenant: str, run_id: str, tokens: int, cost_usd: float, ts: float
    ) -> None:
        """Write what a finished run used (idempotent: the run's own key)."""
        if self._kv is None:
            return
        key = f"{_tenant_key(tenant)}.{day_of(ts)}.{run_id}"
        value = json.dumps({"tenant": tenant, "tokens": tokens, "cost_usd": cost_usd})
        self._add(key, value.encode())  # at once: the next create must already see it
        await self._kv.put(key, value.encode())

    def used_today(self, tenant: str) -> tuple[int, float]:
        """(tokens, dollars) the tenant's runs finished today have used."""
        runs = self._runs.get(f"{_tenant_key(tenant)}.{day_of(self._clock())}", {})
        return sum(t for t, _ in runs.values()), sum(c for _, c in runs.values())

    def refusal(self, tenant: str) -> str | None:
        """Why the tenant may not start a run now, or None."""
        tokens, cost = self.used_today(tenant)
        limits = self.limits
        if limits.tokens is not None and tokens >= limits.tokens:
            used = f"{tokens} tokens of its daily limit of {limits.tokens}"
        elif limits.cost_usd is not None and cost >= limits.cost_usd:
            used = f"${cost:.4f} of its daily limit of ${limits.cost_usd:g}"
        else:
            return None
        return f"tenant {tenant!r} has used {used}; the limit resets at 00:00 UTC"

    def _add(self, key: str, value: bytes) -> None:
        prefix, _, run_id = key.rpartition(".")
        try:
            data = json.loads(value)
            entry = (int(data["tokens"]), float(data["cost_usd"]))
        except (ValueError, KeyError, TypeError):
            return
        today = day_of(self._clock())
        for old in [k for k in self._runs if not k.endswith(today)]:
            del self._runs[old]  # yesterday's sums are done with
        if prefix.endswith(today):
            self._runs[prefix][run_id] = entry

    async def _watch(self, kv: KeyValue) -> None:
        while True:
            try:
                watcher = await kv.watchall()
                async for entry in watcher:
                    if entry is not None and entry.value:
                        self._add(entry.key, entry.value)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a cache of the bucket: retry
                log.warning("usage_watch.restart", error=repr(error))
                await asyncio.sleep(1.0)
