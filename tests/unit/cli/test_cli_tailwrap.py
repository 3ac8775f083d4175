"""The incremental panel wrap: equal to wrapping the whole text, at any chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from massgen_cli.tailwrap import TailWrap, wrap_lines

# Words, spaces, newlines and a wide character: what model output is made of.
pieces = st.lists(
    st.sampled_from(["a", "bb", "word", "averyveryverylongword", " ", "  ", "\n", "漢字", "x."]),
    max_size=80,
)


def test_wrap_lines_breaks_at_words_and_folds_long_ones():
    assert wrap_lines("the quick brown fox", 10) == ["the quick", "brown fox"]
    assert wrap_lines("abcdefghijkl", 5) == ["abcde", "fghij", "kl"]
    assert wrap_lines("one\n\ntwo", 10) == ["one", "", "two"]
    assert wrap_lines("漢字漢字", 4) == ["漢字", "漢字"]  # two cells each
    # A folded word that ends its line is a break: the space after it goes.
    assert wrap_lines("漢字 ", 1) == ["漢", "字", ""]


@settings(max_examples=300, deadline=None)
@given(
    parts=pieces,
    cuts=st.lists(st.integers(0, 400), max_size=12),
    width=st.integers(1, 24),
    height=st.integers(1, 12),
)
def test_fed_in_any_chunks_equals_the_tail_of_a_whole_wrap(parts, cuts, width, height):
    text = "".join(parts)
    wrap = TailWrap(width, keep=height)
    start = 0
    for cut in sorted(c for c in cuts if c < len(text)) + [len(text)]:
        wrap.feed(text[start:cut])
        start = max(start, cut)
    whole = wrap_lines(text, width)
    assert wrap.lines(height) == whole[-height:]


def test_finished_lines_never_change_as_text_arrives():
    wrap = TailWrap(12, keep=1000)
    seen: list[str] = []
    for i in range(200):
        wrap.feed(f"w{i} ")
        finished = wrap.lines(1000)[:-1]
        assert finished[: len(seen)] == seen
        seen = finished
    assert len(seen) > 60
