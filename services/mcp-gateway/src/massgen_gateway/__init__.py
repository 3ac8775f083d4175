"""massgen_gateway: brokers every tool call of every agent, checking each path first.

``permissions`` (pure path checks), ``builtin`` (workspace tools: ``file_tools``,
``compare``, walked with ``fdwalk``), ``sessions`` (the only ``mcp`` import), ``broker``
(a run's tools; ``server_calls``, ``exec_calls``, ``launch``, ``tool_names``,
``tool_paths``), ``service`` (the only NATS module).
"""

from .settings import GatewaySettings

__all__ = ["GatewayService", "GatewaySettings"]


def __getattr__(name: str):
    # GatewayService pulls in nats-py; import it on first use only.
    if name == "GatewayService":
        from .service import GatewayService

        return GatewayService
    raise AttributeError(name)
