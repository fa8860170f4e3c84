"""Property-based fuzz of the tool-call parser on model output (common/tool_format.py): whatever
a model writes (a small model writes anything, and a prompt can make it write anything), reading
its turn never raises, and a well-formed call always reads back as written."""

from __future__ import annotations

import json
import string

from hypothesis import example, given
from hypothesis import strategies as st

from common.tool_format import CALL_CLOSE, CALL_OPEN, TURN_END, parse_tool_call, visible_text

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
ARGUMENTS = st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5)
NAMES = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=64)
# Model output is mostly the pieces of this format, recombined.
FRAGMENTS = st.sampled_from([CALL_OPEN, CALL_CLOSE, TURN_END, "{", "}", "[", "]", '"', ":", ",", '"name"',
                             '"arguments"', "1e999", "9" * 5000, "NaN", "\\", "\\u12", "null", " ", "\n"])
MODEL_TEXT = st.lists(FRAGMENTS | st.text(max_size=20), max_size=60).map("".join)


def _is_call(result: object) -> bool:
    return result is None or (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], str)
                              and isinstance(result[1], (dict, str)))


@given(MODEL_TEXT)
@example(CALL_OPEN + "[" * 100_000)
@example(CALL_OPEN + '{"name": "f", "arguments": ' + "[" * 100_000)
@example(CALL_OPEN + '{"name": "f", "arguments": {"n": ' + "9" * 5000 + "}}" + CALL_CLOSE)
@example(CALL_OPEN + '{"name": "f", "arguments": "' + "[" * 100_000 + '"}' + CALL_CLOSE)
@example(CALL_OPEN + '{"name": "f", "arguments": "' + "9" * 5000 + '"}' + CALL_CLOSE)
@example(CALL_OPEN + '{"name": "f", "arguments": {"n": ' + "9" * 5000)
def test_any_model_output_reads_without_raising(text: str) -> None:
    assert _is_call(parse_tool_call(text))
    assert text.startswith(visible_text(text))


@given(st.text().filter(lambda t: CALL_OPEN not in t and "<" not in t[-12:]), NAMES, ARGUMENTS, st.text(max_size=30))
def test_a_well_formed_call_reads_back_as_written(before: str, name: str, arguments: dict, after: str) -> None:
    call = json.dumps({"name": name, "arguments": arguments})
    text = f"{before}{CALL_OPEN}\n{call}\n{CALL_CLOSE}{after}"
    assert parse_tool_call(text) == (name, arguments)
    assert visible_text(text) == before


@given(NAMES, ARGUMENTS, st.data())
def test_a_call_cut_anywhere_still_reads_without_raising(name: str, arguments: dict, data: st.DataObject) -> None:
    """The model ran out of tokens mid-call: whatever is there is read, or nothing."""
    call = f'{CALL_OPEN}\n{json.dumps({"name": name, "arguments": arguments})}'
    cut = data.draw(st.integers(len(CALL_OPEN), len(call)))
    result = parse_tool_call(call[:cut])
    assert _is_call(result)
    if result is not None and cut == len(call):
        assert result == (name, arguments)
