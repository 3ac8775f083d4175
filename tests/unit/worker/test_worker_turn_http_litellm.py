"""The turn tests over real HTTP again, every model call through litellm.

``test_worker_turn_http`` runs its turns over the default transport, which sends the
fake model's calls (backend type chatcompletion) straight over HTTP; here
``MASSGEN_MODEL_TRANSPORT=litellm`` sends the same calls through litellm, so the turn
loop is held to one behaviour over both transports.
"""

from __future__ import annotations

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.llm import LiteLLMModel
from test_worker_turn_http import *  # noqa: F403 - the same tests, collected here too


@pytest.fixture(autouse=True)
def through_litellm(monkeypatch):
    monkeypatch.setenv("MASSGEN_MODEL_TRANSPORT", "litellm")


def test_the_setting_applies():
    assert LiteLLMModel(BackendSpec(type="chatcompletion", model="m")).transport == "litellm"
