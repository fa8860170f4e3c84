"""What a finished turn becomes: parallel client calls, a server call, or the end."""

from __future__ import annotations

import json

from common.schemas import EngineRequest, SamplingConfig
from common.tool_format import forced_call_prefix, parse_tool_calls
from engine_worker.segments import (
    CallApi,
    Finish,
    chat_outcome,
    cut_call_outcome,
    unconstrained_call_cut,
    whole_calls,
    whole_json_object,
)

PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
OSLO = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
CALC = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2**10"}}\n</tool_call>'


def request(parallel: bool = True) -> EngineRequest:
    return EngineRequest(request_id="r", model="m", prompt_token_ids=[1], sampling=SamplingConfig(max_tokens=10),
                         server_tools=["calculator"], client_tools=["get_weather", "get_time"],
                         parallel_tool_calls=parallel, arrival_time=0.0)


def test_parse_tool_calls_reads_every_block_in_order():
    assert parse_tool_calls(f"Checking.\n{PARIS}\n{OSLO}") == [("get_weather", {"city": "Paris"}),
                                                               ("get_weather", {"city": "Oslo"})]
    assert parse_tool_calls("no calls here") == []


def test_parallel_client_calls_all_come_back():
    outcome = chat_outcome(request(), f"{PARIS}\n{OSLO}", "stop", 5, 0)
    assert isinstance(outcome, Finish) and outcome.reason == "tool_calls"
    assert [json.loads(c.arguments) for c in outcome.tool_calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert len({c.id for c in outcome.tool_calls}) == 2


def test_parallel_tool_calls_false_returns_the_first_only():
    outcome = chat_outcome(request(parallel=False), f"{PARIS}\n{OSLO}", "stop", 5, 0)
    assert [json.loads(c.arguments) for c in outcome.tool_calls] == [{"city": "Paris"}]


def test_client_calls_stop_at_a_server_call():
    outcome = chat_outcome(request(), f"{PARIS}\n{CALC}\n{OSLO}", "stop", 5, 0)
    assert [c.name for c in outcome.tool_calls] == ["get_weather"]


def test_a_server_call_first_pauses_for_it():
    assert chat_outcome(request(), f"{CALC}\n{PARIS}", "stop", 5, 0) == CallApi(api="calculator",
                                                                               arguments={"expression": "2**10"})


def forced(tool: str | None) -> EngineRequest:
    return request().model_copy(update={"forced_tool": tool, "forced_call_schema": {"type": "object"}})


def test_whole_json_object_tells_a_cut_call_from_a_finished_one():
    assert whole_json_object(' {"city": "Paris", "unit": "celsius"} ')
    assert not whole_json_object('{"city": "Paris-Paris-Par')
    assert not whole_json_object('["a list"]') and not whole_json_object("")


def test_a_cut_named_call_is_length_with_the_arguments_as_written():
    outcome = cut_call_outcome(forced("get_weather"), '{"city": "Paris-Paris-Par')
    assert outcome.reason == "length"
    assert [(c.name, c.arguments) for c in outcome.tool_calls] == [("get_weather", '{"city": "Paris-Paris-Par')]


def test_a_cut_required_call_names_its_tool_once_the_name_is_whole():
    outcome = cut_call_outcome(forced(None), '{"name": "get_time", "arguments": {"zone": "Europe/Os')
    assert [(c.name, c.arguments) for c in outcome.tool_calls] == [("get_time", '{"zone": "Europe/Os')]
    assert cut_call_outcome(forced(None), '{"name": "get_ti') == Finish("length")


def test_a_cut_server_side_call_is_not_run():
    assert cut_call_outcome(forced("calculator"), '{"expression": "2*') == Finish("length")


STRING_PREFIX = forced_call_prefix("calculator", {"properties": {"expression": {"type": "string"}},
                                                  "required": ["expression"]})
OBJECT_PREFIX = forced_call_prefix("get_weather", None)


def test_an_unconstrained_call_cut_inside_its_string_comes_back_as_written():
    assert unconstrained_call_cut(STRING_PREFIX, "2*2*2*2", "length") == '{"expression": "2*2*2*2'
    assert unconstrained_call_cut(STRING_PREFIX, '2*2"}}', "length") is None  # its quote closed it
    assert unconstrained_call_cut(STRING_PREFIX, "2*2", "stop") is None  # ended by the model: closed as today


def test_an_unconstrained_object_call_is_cut_only_before_its_line_or_object_ends():
    assert unconstrained_call_cut(OBJECT_PREFIX, '{"city": "Par', "length") == '{"city": "Par'
    (call,) = cut_call_outcome(forced("get_weather"), '{"city": "Par').tool_calls  # the client's: shown as written
    assert call.name == "get_weather" and call.arguments == '{"city": "Par'
    assert unconstrained_call_cut(OBJECT_PREFIX, '{"city": "Paris"}}', "length") is None
    assert unconstrained_call_cut(OBJECT_PREFIX, '{"city": "Par\nmore', "length") is None


def test_a_cut_unconstrained_call_ends_the_request_unrun():
    written = unconstrained_call_cut(STRING_PREFIX, "12*", "length")
    outcome = cut_call_outcome(forced("calculator"), written)
    assert outcome == Finish("length")  # a server-side call cut short is not run


def test_whole_calls_reads_a_required_turns_array_once_its_json_is_whole():
    two = ('[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
           '{"name": "get_weather", "arguments": {"city": "Oslo"}}]')
    assert [c["arguments"]["city"] for c in whole_calls(two)] == ["Paris", "Oslo"]
    assert whole_calls('{"name": "get_time", "arguments": {}}') == [{"name": "get_time", "arguments": {}}]
    assert whole_calls(two[:-1]) is None and whole_calls("[]") is None and whole_calls('["x"]') is None


def test_a_required_array_cut_after_one_call_shows_the_whole_one_and_the_cut_one():
    text = '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {"zone": "Eu'
    outcome = cut_call_outcome(forced(None), text)
    assert outcome.reason == "length"
    assert [(c.name, c.arguments) for c in outcome.tool_calls] == [
        ("get_weather", '{"city": "Paris"}'), ("get_time", '{"zone": "Eu')]
    assert [c.name for c in cut_call_outcome(forced(None), text[:70]).tool_calls] == ["get_weather"]  # 2nd name cut
    assert cut_call_outcome(forced(None), '[{"name": "calculator", "arguments": {"expr') == Finish("length")
