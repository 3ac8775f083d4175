"""File search of an agent's documents: a provider vector store per run and agent.

For a backend with file search (``FILE_SEARCH_TYPES``: OpenAI), an agent's
``file_path`` uploads are not put into its messages. The worker (which alone holds the
provider key) reads them from the gateway, uploads them through litellm's files call,
puts them in a vector store (litellm's vector-store calls), and offers the provider's
``file_search`` tool with that store's id; litellm sends the call to the Responses API.

- Once per run and agent in this worker: later turns of the run reuse the store. Another
  worker replica taking a turn of the same run makes its own (workers share no state).
- Deleted, files and store, when the run ends (``close_run``: the worker service watches
  the run's ``run_finished``) or the worker stops (``close``). Both also expire on the
  provider's side (``STORE_EXPIRY_DAYS`` after last use, files ``FILE_EXPIRY_SECONDS``
  after upload), so a worker that crashes leaves nothing for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import structlog
from massgen_proto.messages import BackendSpec

from .call_plan import endpoint_of
from .litellm_loader import litellm_ready
from .media import MediaError
from .wire import Tool

__all__ = [
    "FILE_EXPIRY_SECONDS",
    "STORE_EXPIRY_DAYS",
    "Document",
    "FileSearchStores",
    "file_search_tool",
]

log = structlog.get_logger("massgen_worker.file_search")

STORE_EXPIRY_DAYS = 1
"""Days a store lives after its last use (OpenAI's shortest)."""
FILE_EXPIRY_SECONDS = 24 * 3600
"""Seconds an uploaded file lives after its upload (OpenAI: one hour to 30 days)."""
INDEX_WAIT_SECONDS = 120.0
"""Longest wait for the provider to index the files before the turn goes on."""


@dataclass(frozen=True)
class Document:
    """One ``file_path`` upload as read from the gateway."""

    name: str
    mime: str
    data: bytes


@dataclass
class _Store:
    store_id: str
    file_ids: list[str]
    backend: BackendSpec


@dataclass
class FileSearchStores:
    """This worker's vector stores, by ``(run_id, agent_id)``.

    Args:
        load: returns the litellm module (loaded off the event loop).
        poll_seconds: pause between checks of the store's indexing.
    """

    load: Callable[[], Awaitable[ModuleType]] = litellm_ready
    poll_seconds: float = 1.0
    _stores: dict[tuple[str, str], _Store] = field(default_factory=dict)
    _making: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def runs(self) -> set[str]:
        """Runs with a store here (the service watches their end)."""
        return {run_id for run_id, _ in self._stores}

    async def store_for(
        self,
        run_id: str,
        agent_id: str,
        backend: BackendSpec,
        documents: Callable[[], Awaitable[list[Document]]],
    ) -> str:
        """The id of the agent's store in this run, made from ``documents()`` the first time.

        Raises:
            MediaError: the provider refused an upload or the store (its message).
        """
        key = (run_id, agent_id)
        async with self._making.setdefault(key, asyncio.Lock()):
            if key not in self._stores:
                self._stores[key] = await self._make(run_id, backend, await documents())
            return self._stores[key].store_id

    async def _make(self, run_id: str, backend: BackendSpec, docs: list[Document]) -> _Store:
        litellm = await self.load()
        auth = _auth(backend)
        store = _Store("", [], backend)
        try:
            for doc in docs:
                made = await litellm.acreate_file(
                    file=(doc.name, doc.data, doc.mime), purpose="assistants",
                    expires_after={"anchor": "created_at", "seconds": FILE_EXPIRY_SECONDS},
                    **auth,
                )  # fmt: skip
                store.file_ids.append(made.id)
            created = await litellm.vector_stores.main.acreate(
                name=f"massgen-{run_id}", file_ids=store.file_ids,
                expires_after={"anchor": "last_active_at", "days": STORE_EXPIRY_DAYS}, **auth,
            )  # fmt: skip
            store.store_id = str(_get(created, "id"))
            await self._indexed(litellm, store.store_id, auth)
        except Exception as error:  # CancelledError is not an Exception: it propagates.
            await _delete(litellm, store, auth)
            raise MediaError(f"file search: the provider refused the documents: {error}") from None
        log.info("file_search_store", run_id=run_id, files=len(docs), store=store.store_id)
        return store

    async def _indexed(self, litellm: ModuleType, store_id: str, auth: dict[str, Any]) -> None:
        """Wait until the provider has indexed the store's files (bounded)."""
        give_up = time.monotonic() + INDEX_WAIT_SECONDS
        while time.monotonic() < give_up:
            found = await litellm.vector_stores.main.aretrieve(vector_store_id=store_id, **auth)
            counts = _get(found, "file_counts") or {}
            if _get(counts, "in_progress") == 0 or _get(found, "status") == "completed":
                if _get(counts, "failed"):
                    raise MediaError(
                        f"the provider could not index {_get(counts, 'failed')} file(s)"
                    )
                return
            await asyncio.sleep(self.poll_seconds)
        log.warning("file_search_index_slow", store=store_id)

    async def close_run(self, run_id: str) -> None:
        """Delete the run's stores and their files (a failure is logged, never raised)."""
        keys = [key for key in self._stores if key[0] == run_id]
        if not keys:
            return
        litellm = await self.load()
        for key in keys:
            store = self._stores.pop(key)
            self._making.pop(key, None)
            await _delete(litellm, store, _auth(store.backend))
            log.info("file_search_store_deleted", run_id=run_id, store=store.store_id)

    async def close(self) -> None:
        """Delete every store (the worker is stopping)."""
        for run_id in self.runs():
            await self.close_run(run_id)


def file_search_tool(store_id: str) -> Tool:
    """The provider's ``file_search`` tool over one store."""
    return {"type": "file_search", "vector_store_ids": [store_id]}


def _auth(backend: BackendSpec) -> dict[str, Any]:
    api_key, base_url = endpoint_of(backend)
    auth: dict[str, Any] = {"custom_llm_provider": "openai", "api_key": api_key}
    if base_url:
        auth["api_base"] = base_url
    return auth


async def _delete(litellm: ModuleType, store: _Store, auth: dict[str, Any]) -> None:
    calls = [litellm.vector_stores.main.adelete(vector_store_id=store.store_id, **auth)]
    calls = calls if store.store_id else []
    calls += [litellm.afile_delete(file_id, **auth) for file_id in store.file_ids]
    for call in calls:  # one at a time; a failure leaves the others to try
        try:
            await call
        except Exception as error:  # noqa: BLE001 - the provider's expiry removes the rest
            log.warning("file_search_delete_failed", store=store.store_id, error=str(error))


def _get(obj: object, name: str) -> Any:
    # litellm returns typed dicts for some of these calls and objects for others.
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
