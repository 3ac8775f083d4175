"""``massgen eval``: measure a team's answers against a benchmark (see ``cli.py``)."""
