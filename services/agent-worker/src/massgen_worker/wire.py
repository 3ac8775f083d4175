"""The OpenAI chat shapes a turn passes around, as JSON types.

A conversation is a list of messages in OpenAI chat form and the tools are OpenAI
function tools (or a provider's own tool, such as ``{"type": "web_search"}``): JSON
objects whose keys the provider protocol fixes, not ours (a tool's name is read by
``massgen_proto.function_tools.function_name``).
"""

from __future__ import annotations

from typing import TypeAlias

from massgen_proto.function_tools import function_name
from massgen_proto.json_types import JsonObject

# ``function_name`` is the contract's; importable from here too (worker modules use it).
__all__ = ["Message", "Tool", "function_name"]

Message: TypeAlias = JsonObject
"""One message of a conversation in OpenAI chat form (``role``, ``content``...)."""

Tool: TypeAlias = JsonObject
"""One tool offered to the model, in OpenAI function-tool JSON."""
