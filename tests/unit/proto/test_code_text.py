"""Reading code in answer text: the task's examples, the code an answer checks."""

from __future__ import annotations

from massgen_proto.code_text import (
    ELIDED_DOCSTRING,
    answer_code,
    elide_example_runs,
    elide_task_docstrings,
    restore_task_docstrings,
    task_examples,
)

STUB = '''from typing import List


def longest(strings: List[str]) -> str:
    """ Return the longest string.
    >>> longest([])

    >>> longest(['a', 'bb'])
    'bb'
    """
'''


def test_examples_come_from_the_docstrings_of_the_tasks_code():
    # The docstring's closing quotes right after an output are not part of it; an
    # example with no output expects none.
    examples = task_examples(f"Complete the function.\n\n```python\n{STUB}```")
    assert examples == ">>> longest([])\n>>> longest(['a', 'bb'])\n'bb'\n"
    # A stub given bare (no fence) reads the same.
    assert task_examples(STUB) == examples


def test_a_stub_that_does_not_parse_still_gives_its_examples_without_the_quotes():
    broken = 'def f(x):\n    """Double it.\n    >>> f(2)\n    4\n    """\n    return (\n'
    assert task_examples(broken) == ">>> f(2)\n4\n"


def test_no_examples_without_code_or_without_doctest_lines():
    assert task_examples("What is 2 + 2?\n>>> 2 + 2\n4\n") == ""  # no function to check
    assert task_examples("def f(x):\n    '''Double it: f(2) == 4.'''\n") == ""


def test_multi_line_examples_keep_their_continuation_lines():
    stub = 'def f(xs):\n    """\n    >>> f([1,\n    ...    2])\n    3\n    """\n'
    assert task_examples(stub) == ">>> f([1,\n...    2])\n3\n"


def test_the_code_an_answer_checks_is_its_defining_blocks_that_parse():
    text = (
        "Here:\n```python\ndef f(x):\n    return 2 * x\n```\nUse it:\n```python\nf(2)\n```\n"
        "```python\ndef g(:\n```"
    )
    assert answer_code(text) == "def f(x):\n    return 2 * x\n"
    assert answer_code("The answer is 4.") == ""
    assert answer_code("def f(x):\n    return x") == "def f(x):\n    return x"


def test_a_fence_named_inside_a_sentence_opens_no_block():
    task = (
        "Reply in one ```python code block.\n\n```python\n"
        'def f(x):\n    """\n    >>> f(2)\n    4\n    """\n```'
    )
    assert task_examples(task) == ">>> f(2)\n4\n"
    assert answer_code("Use ```python fences:\n```python\ndef f(x):\n    return 2 * x```") == (
        "def f(x):\n    return 2 * x"
    )


def test_examples_written_as_prose_are_read_when_they_are_python():
    stub = (
        'def fly(q, w):\n    """Example:\n    fly([1, 2], 5) \u279e False\n'
        "    * fly([3], 5) => True\n    fly(a) => False\n    fly([1], 1) => true\n"
        "    fly([2], 9) == None\n    other(1) == 2\n    fly([1], w=2) -> True\n"
        '    """\n'
    )
    # Calls of the task's own function with literal arguments and a literal value only
    # (``true`` is the boolean): ``fly(a)``, another function and keyword calls are
    # left out.
    assert task_examples(stub) == (
        ">>> fly([1, 2], 5)\nFalse\n>>> fly([3], 5)\nTrue\n>>> fly([1], 1)\nTrue\n>>> fly([2], 9)\n"
    )


def test_examples_that_say_what_a_call_returns_in_words():
    stub = (
        'def f(x, y):\n    """Examples:\n    f(148, 412) should return 16.\n'
        '    f(1, 2)   # returns "db1111db"\n    f(5, 1) returns [1, 5] # odd ones: 1, 5\n'
        "    for f(7, 34) == 34\n    assert f(2, 2) => ['aa']\n"
        "    f(3, 3) returns what you would expect\n"
        '    """\n'
    )
    assert task_examples(stub) == (
        ">>> f(148, 412)\n16\n>>> f(1, 2)\n'db1111db'\n>>> f(5, 1)\n[1, 5]\n"
        ">>> f(7, 34)\n34\n>>> f(2, 2)\n['aa']\n"
    )


def test_examples_that_name_the_arguments_are_calls_in_the_parameters_order():
    stub = (
        'def remove(s, c):\n    """\n    For s = "abcde", c = "ae", the result should be '
        "('bcd',False)\n    For c = \"b\", s = \"abc\" the output should be ('ac', False).\n"
        "    For N = 1000, the sum of digits will be 1 the output should be 1.\n"
        '    Example 1:\n        Input: s = "aa", c = "a"\n        Output: (\'\', True)\n'
        "        Explanation: all gone.\n"
        '    Input: x = 1\n    Output: 2\n    Input: "x", "y"\n    Output: ("", False)\n'
        '    """\n'
    )
    # Names other than the parameters (``N``, ``x``) give no example; bare values are
    # taken in order when there are as many as parameters.
    assert task_examples(stub) == (
        ">>> remove('abcde', 'ae')\n('bcd', False)\n>>> remove('abc', 'b')\n('ac', False)\n"
        ">>> remove('aa', 'a')\n('', True)\n>>> remove('x', 'y')\n('', False)\n"
    )
    one = 'def pluck(arr):\n    """\n    Input: [4,2,3]\n    Output: [2, 1]\n    """\n'
    assert task_examples(one) == ">>> pluck([4, 2, 3])\n[2, 1]\n"


def test_loosely_written_doctest_outputs_are_read_as_meant():
    stub = (
        'def f(x):\n    """\n    >>> f(1) == 2\n    >>> f(2)\n    "21"\n'
        "    >>> f(3)\n    None\n    >>> f(4)\n    [1,2]\n    >>> f(5)\n    <object>\n"
        '    """\n'
    )
    # A comparison with no output means True; literals are compared as Python prints
    # them; None prints nothing; anything else is kept as written.
    assert task_examples(stub) == (
        ">>> f(1) == 2\nTrue\n>>> f(2)\n'21'\n>>> f(3)\n>>> f(4)\n[1, 2]\n>>> f(5)\n<object>\n"
    )


def test_a_docstring_copied_from_the_task_is_shown_as_a_marker():
    task = f"Complete the function.\n\n```python\n{STUB}```"
    # Copied with other indentation: still the task's text.
    copied = STUB.replace("    ", "  ") + "  return max(strings, key=len, default=None)\n"
    shown = elide_task_docstrings(f"```python\n{copied}```", task)
    assert f'"""{ELIDED_DOCSTRING}"""' in shown and ">>> longest" not in shown
    assert "return max(strings, key=len, default=None)" in shown and answer_code(shown)
    # An edited docstring, a short one and text without one are left as they are.
    edited = STUB.replace("Return the longest string.", "Return the first longest string.")
    assert elide_task_docstrings(edited, task) == edited
    short = 'def f():\n    """Return the longest string."""\n'
    assert elide_task_docstrings(short, task) == short
    assert elide_task_docstrings("The answer is 4.", task) == "The answer is 4."


def test_an_answers_own_runs_of_examples_are_shown_as_one_note():
    runs = "# Test cases\nprint(f(1))  # 2\nassert f(2) == 3\nresult = f(3)\n"
    answer = (
        f"Here it is:\n```python\nimport math\n\ndef f(x):\n    return x + 1\n\n{runs}```\nDone."
    )
    shown = elide_example_runs(answer)
    assert shown == (
        "Here it is:\n```python\nimport math\n\ndef f(x):\n    return x + 1\n\n"
        "# (4 lines running examples, not shown)\n```\nDone."
    )
    assert answer_code(shown)  # the code that is shown still parses and defines f
    main = 'def f(x):\n    return x\n\nif __name__ == "__main__":\n    import doctest\n    doctest.testmod()\n'
    assert "(3 lines running examples" in elide_example_runs(f"```python\n{main}```")
    # Left whole: a definition after the runs, one line only, code that does not
    # parse, a block without a function, prose.
    for kept in (
        "```python\ndef f(x):\n    return x\nprint(f(1))\ndef g():\n    pass\n```",
        "```python\ndef f(x):\n    return x\nprint(f(1))\n```",
        "```python\ndef f(x:\n    return x\nprint(f(1))\nprint(f(2))\n```",
        "```python\nx = 1\nprint(x)\nprint(x)\n```",
        "The answer is 4.",
    ):
        assert elide_example_runs(kept) == kept


def test_a_marker_an_agent_copied_becomes_the_tasks_docstring_again():
    task = f"Complete the function.\n\n```python\n{STUB}```"
    answer = f"```python\n{STUB}    return max(strings, key=len, default=None)\n```"
    shown = elide_task_docstrings(answer, task)
    restored = restore_task_docstrings(shown, task)
    assert ">>> longest(['a', 'bb'])" in restored and ELIDED_DOCSTRING not in restored
    assert task_examples(restored) == task_examples(task) and answer_code(restored)
    # In a function the task does not document, the marker line goes.
    other = f'def helper():\n    """{ELIDED_DOCSTRING}"""\n    return 1\n'
    assert restore_task_docstrings(other, task) == "def helper():\n    return 1\n"
