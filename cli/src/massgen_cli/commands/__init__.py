"""One module per job of the ``massgen`` command; ``main`` parses and dispatches to them.

- :mod:`.ask`: ``massgen ["question"]`` on a warm or embedded stack, or ``--api URL``
- :mod:`.interactive`: the interactive session (no question)
- :mod:`.turn`: one run of a question, and the open → run → close flow they share
- :mod:`.runs`: ``massgen runs list | show | replay``
- :mod:`.stack`: ``massgen up | down | status``
- :mod:`.serve`: ``massgen serve api``

``massgen eval`` is the :mod:`massgen_cli.evals` package (``evals/cli.py``).
"""
