"""What tests and benchmarks share: fakes of the outside world and running stacks.

- ``fakes``: a scripted OpenAI-protocol model server, provider fakes, an MCP tool server,
  agent behaviours and turn requests (``python -m tests.support.fakes.serve`` serves the
  fake model as a process of its own);
- ``nats_fixture``: a real nats-server per test session;
- ``api_stack``: the HTTP API over an embedded stack;
- ``cluster_helpers``: runs and checks on a local multi-process cluster.

Imported as ``tests.support`` from the repository root: pytest puts the root on the path
(``pythonpath`` in pyproject.toml), and the benchmarks run as modules of ``bench``.
"""
