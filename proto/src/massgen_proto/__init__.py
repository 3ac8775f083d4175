"""massgen_proto: the shared contract of MassGen-on-NATS.

Subjects (``subjects``), inter-service messages (``messages``), run events
(``events``), the run-config model (``config``), backend types (``providers``),
identifiers (``ids``) and the event fold every reader shares (``summary``).
"""

from . import config, events, ids, messages, providers, subjects, summary, tools

__all__ = ["config", "events", "ids", "messages", "providers", "subjects", "summary", "tools"]
