"""The incremental decoder of ``new_answer``'s content: any chunking gives the same text."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from massgen_worker.stream import JsonFieldDecoder

KEY = "content"

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def arguments(draw) -> tuple[str, object]:
    """JSON arguments text (any spacing, escaping and key order) and its field's value."""
    keys = st.text(max_size=10).filter(lambda k: k != KEY)
    others = draw(st.dictionaries(keys, values, max_size=4))
    content = draw(st.text() | values)
    items = list(others.items())
    items.insert(draw(st.integers(0, len(items))), (KEY, content))
    text = json.dumps(
        dict(items),
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.none() | st.integers(0, 3)),
        separators=draw(st.sampled_from([None, (",", ":"), (" , ", " : ")])),
    )
    return text, content


def decode(pieces: list[str]) -> str:
    decoder = JsonFieldDecoder(KEY)
    return "".join(decoder.feed(piece) for piece in pieces)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=400, deadline=None)
@given(arguments(), st.lists(st.integers(min_value=0, max_value=4000), max_size=40))
def test_any_chunking_decodes_what_the_whole_decodes(case, cuts):
    text, content = case
    expected = content if isinstance(content, str) else ""
    assert json.loads(text)[KEY] == content
    assert decode([text]) == expected
    assert decode(split(text, cuts)) == expected


@settings(max_examples=100, deadline=None)
@given(arguments())
def test_one_character_at_a_time(case):
    text, content = case
    assert decode(list(text)) == (content if isinstance(content, str) else "")


def test_escapes_and_surrogate_pairs_split_anywhere():
    text = json.dumps({"content": 'a"b\\c\n\t\u00e9 😀 end'}, ensure_ascii=True)
    assert "\\ud83d\\ude00" in text
    for cut in range(len(text) + 1):
        assert decode([text[:cut], text[cut:]]) == 'a"b\\c\n\t\u00e9 😀 end'


def test_nested_content_keys_and_strings_with_braces_are_not_the_field():
    text = '{"meta": {"content": "no"}, "note": "}{\\"content\\": \\"x\\"", "content": "yes"}'
    assert decode(list(text)) == "yes"


def test_partial_text_is_decoded_as_far_as_it_goes():
    decoder = JsonFieldDecoder(KEY)
    assert decoder.feed('{"content": "Can') == "Can"
    assert decoder.feed("berra\\") == "berra"
    assert decoder.feed("n is") == "\n is"
    assert decoder.feed(' the capital"}  trailing {"content": "x"}') == " the capital"


def test_invalid_json_never_raises():
    for text in ['{"content": "a\\q b', '{"content": "\\u12zz!"', "[1, 2", '"content"', "}}}{"]:
        decode(list(text))  # tolerated
    assert decode(['{"content": "a\\q b']) == "aq b"
    assert decode(['{"content": "x\\u12zz!"}']) == "xzz!"
    assert decode(['{"content": 42}']) == ""
