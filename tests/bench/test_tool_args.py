"""The tool-argument scoring of bench/tool_args.py, on the openai client's own message type."""

from __future__ import annotations

import json

import jsonschema
from openai.types.chat import ChatCompletionMessage

from bench.tool_args import DATA, score


def message(name: str, arguments: str) -> ChatCompletionMessage:
    return ChatCompletionMessage.model_validate({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}]})


DATASET = json.loads(DATA.read_text())
TOOLS = {t["function"]["name"]: t for t in DATASET["tools"]}
POWER = next(c for c in DATASET["cases"] if c["prompt"] == "What is 2**10?")


def test_the_shipped_set_is_40_cases_over_schema_valid_tools():
    assert len(DATASET["cases"]) == 40 and {c["tool"] for c in DATASET["cases"]} == set(TOOLS)
    for tool in TOOLS.values():
        jsonschema.Draft202012Validator.check_schema(tool["function"]["parameters"])


def test_the_issues_wrong_call_is_valid_but_not_right():
    """The issue's `{"expression": "2"}` for 2**10: schema-valid, the wrong value."""
    assert score(POWER, TOOLS, message("calculate", '{"expression": "2"}')) == {
        "called": True, "parsed": True, "valid": True, "right_tool": True, "right_value": False}
    assert score(POWER, TOOLS, message("calculate", '{"expression": "2**10"}'))["right_value"]


def test_broken_and_invalid_arguments_and_no_call():
    assert score(POWER, TOOLS, message("calculate", '{"expression": 2'))["parsed"] is False
    assert score(POWER, TOOLS, message("calculate", '{"expr": "2**10"}'))["valid"] is False
    none = ChatCompletionMessage.model_validate({"role": "assistant", "content": "1024"})
    assert not any(score(POWER, TOOLS, none).values())
