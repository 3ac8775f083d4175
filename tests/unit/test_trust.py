"""Which events a reader believes: by subject, and streamed ones by their turn's tag."""

from __future__ import annotations

from massgen_proto import events as ev
from massgen_proto.ids import stream_tag, turn_token
from massgen_proto.subjects import events_subject
from massgen_proto.trust import StreamGate

RUN = "0123456789abcdef"
TURN = f"{RUN}-agent1-t1"
TAG = stream_tag(turn_token("secret", TURN))
IDS = {"run_id": RUN, "agent": "a1", "label": "agent1"}


def _send(gate: StreamGate, source: str, event: ev.RunEvent) -> bool:
    return gate.admit(events_subject(RUN, source), event.model_dump_json().encode()) is not None


def _started(tag: str = TAG) -> ev.TurnStarted:
    return ev.TurnStarted(**IDS, turn_id=TURN, phase="coordinate", number=1, stream_tag=tag)


def _chunk(tag: str, **ids: str) -> ev.Chunk:
    return ev.Chunk(**{**IDS, **ids}, turn_id=TURN, channel="answer", text="hi", tag=tag)


def test_a_chunk_counts_only_with_the_tag_of_a_turn_the_orchestrator_announced() -> None:
    gate = StreamGate()
    assert not _send(gate, "stream", _chunk(TAG))  # turn not announced yet
    assert not _send(gate, "stream", _started())  # only the orchestrator announces turns
    assert _send(gate, "run", _started())
    assert _send(gate, "stream", _chunk(TAG))
    assert not _send(gate, "stream", _chunk(""))
    assert not _send(gate, "stream", _chunk("0" * 24))
    assert not _send(gate, "stream", _chunk(TAG, agent="a2"))  # another agent's mouth
    usage = ev.TokenUsage(**IDS, turn_id=TURN, prompt_tokens=10**9, completion_tokens=0)
    assert not _send(gate, "stream", usage)
    assert _send(gate, "stream", usage.model_copy(update={"tag": TAG}))


def test_the_tag_is_derived_from_the_token_one_way_and_empty_without_tokens() -> None:
    token = turn_token("secret", TURN)
    assert TAG and TAG not in token and stream_tag(token) == TAG
    assert stream_tag(turn_token("other", TURN)) != TAG
    assert stream_tag("") == ""
    gate = StreamGate()  # a run without tokens: untagged chunks are its chunks
    assert _send(gate, "run", _started(tag=""))
    assert _send(gate, "stream", _chunk(""))


def test_a_run_is_forgotten_when_it_finishes_and_the_oldest_runs_beyond_the_cap() -> None:
    gate = StreamGate(max_runs=1)
    assert _send(gate, "run", _started())
    assert _send(gate, "run", ev.RunFinished(run_id=RUN, status="completed"))
    assert not _send(gate, "stream", _chunk(TAG))
    assert _send(gate, "run", _started())
    other = ev.TurnStarted(**{**IDS, "run_id": "f" * 16}, turn_id="x", phase="coordinate",
                           number=1)  # fmt: skip
    gate.learn(other)
    assert not _send(gate, "stream", _chunk(TAG))


def test_relays_parse_only_what_the_gate_looks_into() -> None:
    gate = StreamGate()
    subject = events_subject(RUN, "run")
    assert gate.allows(subject, b"not even json", "answer_accepted")  # passed on as is
    assert not gate.allows(events_subject(RUN, "stream"), b"{}", "answer_accepted")
    assert not gate.allows(events_subject(RUN, "stream"), b"{}", "chunk")
