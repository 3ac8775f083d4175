"""massgen_proto: the shared contract of MassGen-on-NATS.

Subjects (``subjects``), inter-service messages (``messages``), run events
(``events``), the run-config model (``config``), backend types (``providers``),
identifiers (``ids``), the event fold every reader shares (``summary``), which events a
reader may believe (``trust``), what may be read of a run (``record``) and the shared
deployment policies (``endpoints``, ``catalog``). Runtime helpers (NATS connections,
streams, health, logging, start-up) are in the service kit, ``massgen_kit``.

Nothing is imported here: a process pays only for the modules it uses (the CLI's
start-up and the worker's are measured).
"""
