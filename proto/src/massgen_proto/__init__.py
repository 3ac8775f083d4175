"""massgen_proto: the shared contract of MassGen-on-NATS.

Subjects (``subjects``), inter-service messages (``messages``), run events
(``events``), the run-config model (``config``), backend types (``providers``),
identifiers (``ids``), the event fold every reader shares (``summary``) and process
helpers for the entry points (``health``, ``logsetup``, ``runtime``).

Nothing is imported here: a process pays only for the modules it uses (the CLI's
start-up and the worker's are measured).
"""
