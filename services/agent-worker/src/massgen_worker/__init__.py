"""massgen_worker: executes agent turns through litellm and reports them over NATS.

Only ``llm`` imports litellm (lazily) and only ``service`` touches NATS; ``stream``,
``coalesce`` and ``turn`` (with ``model_calls``, ``publisher``, ``stream_ends`` and
``tool_messages``) are pure.
"""

from .settings import WorkerSettings

__all__ = ["WorkerService", "WorkerSettings"]


def __getattr__(name: str):
    # WorkerService pulls in nats-py; import it on first use only.
    if name == "WorkerService":
        from .service import WorkerService

        return WorkerService
    raise AttributeError(name)
