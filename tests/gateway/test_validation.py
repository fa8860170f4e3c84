"""Every bad input: its status, OpenAI's error shape, a message naming the problem, and nothing
queued for the engine."""

from __future__ import annotations

import json

import pytest

from tests.gateway.conftest import MAX_MODEL_LEN, MODEL, assert_openai_error

pytestmark = pytest.mark.asyncio

USER = [{"role": "user", "content": "Hi!"}]
FN = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


NESTED: dict = {}
_inner = NESTED
for _ in range(100):  # deeper than 64, within what the body parser takes
    _inner["a"] = {}
    _inner = _inner["a"]


def chat(**fields):
    return {"model": MODEL, "messages": USER, **fields}


def plan(*segments):
    return {"segments": list(segments)}


CHAT_CASES = [
    # (id, body, status, param, needles)
    ("missing-role", {"model": MODEL, "messages": [{"content": "x"}]}, 400, "messages.0.role",
     ["messages.0.role", "Field required"]),
    ("bad-role", chat(messages=[{"role": "wizard", "content": "x"}]), 400, "messages.0.role", ["messages.0.role"]),
    ("missing-messages", {"model": MODEL}, 400, "messages", ["messages: Field required"]),
    ("empty-messages", chat(messages=[]), 400, "messages", ["messages"]),
    ("missing-model", {"messages": USER}, 400, "model", ["model: Field required"]),
    ("wrong-type-temperature", chat(temperature="hot"), 400, "temperature", ["temperature", "number"]),
    ("temperature-range", chat(temperature=3), 400, "temperature", ["temperature", "less than or equal to 2"]),
    ("wrong-type-max-tokens", chat(max_tokens="5"), 400, "max_tokens", ["max_tokens", "integer"]),
    ("content-number", chat(messages=[{"role": "user", "content": 5}]), 400, "messages.0.content",
     ["messages.0.content"]),
    ("content-image-part", chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     400, "messages.0.content", ["messages.0.content", "content part 0", "image_url"]),
    ("user-without-content", chat(messages=[{"role": "user"}]), 400, "messages.0", ["user message needs content"]),
    ("body-not-object", [1, 2], 400, None, ["request body", "object"]),
    ("max-tokens-zero", chat(max_tokens=0), 400, "max_tokens", ["max_tokens", "greater than or equal to 1"]),
    ("max-tokens-negative", chat(max_tokens=-3), 400, "max_tokens", ["max_tokens"]),
    ("max-completion-tokens-zero", chat(max_completion_tokens=0), 400, "max_completion_tokens",
     ["max_completion_tokens"]),
    ("n-too-many", chat(n=17), 400, "n", ["n: Input should be less than or equal to 16"]),
    ("best-of", chat(best_of=2), 400, "best_of", ["best_of > 1 is not supported"]),
    ("stop-too-many", chat(stop=[str(i) for i in range(17)]), 400, "stop", ["stop", "at most 16"]),
    ("stop-with-plan", chat(stop=["x"], plan=plan({"generate_tokens": 3})), 400, "stop",
     ["stop cannot be combined with plan"]),
    ("top-logprobs-alone", chat(top_logprobs=2), 400, "top_logprobs", ["top_logprobs needs logprobs: true"]),
    ("top-logprobs-range", chat(logprobs=True, top_logprobs=21), 400, "top_logprobs", ["less than or equal to 20"]),
    ("logprobs-type", chat(logprobs=3), 400, "logprobs", ["logprobs", "boolean"]),
    ("logit-bias-key", chat(logit_bias={"a": 1}), 400, "logit_bias", ["logit_bias keys are token ids"]),
    ("logit-bias-range", chat(logit_bias={"5": 101}), 400, "logit_bias.5", ["less than or equal to 100"]),
    ("logit-bias-vocab", chat(logit_bias={"99999999": 1}), 400, "logit_bias", ["99999999", "outside the vocabulary"]),
    ("penalty-range", chat(presence_penalty=3), 400, "presence_penalty", ["less than or equal to 2"]),
    ("response-format-type", chat(response_format={"type": "xml"}), 400, "response_format.type", ["'json_object'"]),
    ("json-schema-missing", chat(response_format={"type": "json_schema"}), 400, "response_format",
     ["needs a json_schema object"]),
    ("json-schema-invalid", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "banana"}}}), 400, "response_format.json_schema.schema",
     ["not a valid JSON schema"]),
    ("structured-two-kinds", chat(structured_outputs={"regex": "a+", "choice": ["a"]}), 400, "structured_outputs",
     ["exactly one of json, json_object, regex, choice, grammar"]),
    ("structured-bad-regex", chat(structured_outputs={"regex": "(a"}), 400, "structured_outputs.regex",
     ["not a valid regular expression"]),
    ("guided-bad-regex", chat(guided_regex="[a"), 400, "guided_regex", ["not a valid regular expression"]),
    ("two-constraints", chat(response_format={"type": "json_object"}, guided_choice=["a", "b"]), 400, "guided_choice",
     ["only one output constraint", "response_format, guided_choice"]),
    ("constraint-with-tools", chat(tools=[FN], response_format={"type": "json_object"}), 400, "response_format",
     ["cannot be combined with tools"]),
    ("tool-wrong-type", chat(tools=[{"type": "retrieval", "function": FN["function"]}]), 400, "tools.0.type",
     ["tools.0.type", "'function'"]),
    ("tool-missing-function", chat(tools=[{"type": "function"}]), 400, "tools.0.function",
     ["tools.0.function: Field required"]),
    ("tool-missing-name", chat(tools=[{"type": "function", "function": {"parameters": {}}}]), 400,
     "tools.0.function.name", ["tools.0.function.name: Field required"]),
    ("tool-bad-name", chat(tools=[{"type": "function", "function": {"name": "get weather!"}}]), 400,
     "tools.0.function.name", ["tools.0.function.name", "'get weather!'"]),
    ("tool-parameters-list", chat(tools=[{"type": "function", "function": {"name": "f", "parameters": [1]}}]), 400,
     "tools.0.function.parameters", ["tools.0.function.parameters", "object"]),
    ("tool-parameters-not-object", chat(tools=[{"type": "function", "function": {"name": "f",
                                                                               "parameters": {"type": "string"}}}]),
     400, "tools.0.function.parameters", ["tools.0.function.parameters", '"object"']),
    ("tools-not-list", chat(tools={"type": "function"}), 400, "tools", ["tools", "array"]),
    ("duplicate-tools", chat(tools=[FN, FN]), 400, "tools", ["duplicate tool name 'get_weather'"]),
    ("tool-choice-undeclared", chat(tools=[FN], tool_choice={"type": "function", "function": {"name": "search"}}),
     400, "tool_choice", ["'search'", "not among the declared tools", "get_weather"]),
    ("tool-choice-without-tools", chat(tool_choice={"type": "function", "function": {"name": "search"}}), 400,
     "tool_choice", ["'search'", "not among the declared tools"]),
    ("tool-choice-bad-string", chat(tools=[FN], tool_choice="sometimes"), 400, "tool_choice", ["tool_choice"]),
    ("tool-choice-required-many-unconstrained",
     chat(tools=[FN, {**FN, "function": {**FN["function"], "name": "other"}}], tool_choice="required",
          constrain_tool_calls=False), 400,
     "tool_choice", ['"required"', "exactly one", "constrain_tool_calls"]),
    ("tool-choice-required-none", chat(tool_choice="required"), 400, "tool_choice",
     ['"required" needs declared tools']),
    ("plan-zero-tokens", chat(plan=plan({"generate_tokens": 0})), 400, "plan.segments.0.generate_tokens",
     ["plan.segments.0.generate_tokens", "greater than or equal to 1"]),
    ("plan-unknown-api", chat(plan=plan({"generate_tokens": 3, "api": "teleport"}, {"generate_tokens": 3})), 400,
     "plan.segments.0.api", ["plan.segments.0.api"]),
    ("plan-unknown-field", chat(plan=plan({"generate_tokens": 3, "tokens": 4})), 400, "plan.segments.0.tokens",
     ["plan.segments.0.tokens", "Extra inputs"]),
    ("plan-ends-in-call", chat(plan=plan({"generate_tokens": 3, "api": "calculator"})), 400, "plan",
     ["plan", "the last segment must not call an api"]),
    ("plan-no-segments", chat(plan=plan()), 400, "plan.segments", ["plan.segments"]),
    ("plan-not-object", chat(plan="fast"), 400, "plan", ["plan"]),
    ("program-id-empty", chat(program_id=""), 400, "program_id", ["program_id"]),
    ("ignore-eos-type", chat(ignore_eos="yes"), 400, "ignore_eos", ["ignore_eos", "boolean"]),
    ("seed-over-int64", chat(seed=2**64), 400, "seed", ["seed", "less than or equal to"]),
    ("seed-under-int64", chat(seed=-(2**63) - 1), 400, "seed", ["seed", "greater than or equal to"]),
    ("tool-properties-list", chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": ["x"]}}}], tool_choice="required"), 400,
     "tools.0.function.parameters", ["parameters.properties must be an object"]),
    ("tool-required-not-list", chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "required": "x"}}}]), 400,
     "tools.0.function.parameters", ["parameters.required must be a list"]),
    ("tool-call-arguments-too-deep", chat(messages=[*USER, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": NESTED}}]}]), 400,
     "messages.1.tool_calls.0.function.arguments", ["nest deeper than 64 levels"]),
    # vLLM's and OpenAI's fields this server does not honour (gateway/unsupported.py).
    ("beam-search", chat(use_beam_search=True), 400, "use_beam_search", ["use_beam_search is not supported"]),
    ("min-tokens", chat(min_tokens=4), 400, "min_tokens", ["min_tokens is not supported"]),
    ("stop-token-ids", chat(stop_token_ids=[2]), 400, "stop_token_ids", ["stop_token_ids is not supported"]),
    ("skip-special-tokens-1", chat(skip_special_tokens=1), 400, "skip_special_tokens", ["skip_special_tokens"]),
    ("continue-final-message", chat(continue_final_message=True), 400, "continue_final_message",
     ["continue_final_message is not supported"]),
    ("legacy-functions", chat(functions=[{"name": "f"}]), 400, "functions", ["functions is not supported"]),
    ("continuous-usage", chat(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True}),
     400, "stream_options.continuous_usage_stats", ["continuous_usage_stats is not supported"]),
]


@pytest.mark.parametrize("body,status,param,needles", [c[1:] for c in CHAT_CASES], ids=[c[0] for c in CHAT_CASES])
async def test_bad_chat_request(gw, body, status, param, needles):
    response = await gw.http.post("/v1/chat/completions", json=body)
    error = assert_openai_error(response, status, *needles)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert response.headers["x-request-id"].startswith("chatcmpl-")
    assert await gw.engine.queued() == 0


JSON = {"Content-Type": "application/json"}


async def test_malformed_json(gw):
    response = await gw.http.post("/v1/chat/completions", content=b'{"model": "x", "messages": [',
                                  headers={"Content-Type": "application/json"})
    assert assert_openai_error(response, 400, "not valid JSON")["code"] == "invalid_json"
    assert await gw.engine.queued() == 0


async def test_empty_body(gw):
    assert_openai_error(await gw.http.post("/v1/chat/completions", content=b"", headers=JSON), 400, "not valid JSON")


async def test_unknown_model_is_404(gw):
    response = await gw.http.post("/v1/chat/completions", json=chat(model="gpt-4o"))
    error = assert_openai_error(response, 404, "'gpt-4o'", "does not exist", MODEL)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    response = await gw.http.post("/v1/completions", json={"model": "gpt-4o", "prompt": "x"})
    assert assert_openai_error(response, 404, "'gpt-4o'")["code"] == "model_not_found"


def _prompt_tokens(tokenizer, messages) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer.encode(text, add_special_tokens=False))


async def test_prompt_plus_max_tokens_over_the_limit_names_both(gw, tokenizer):
    n = _prompt_tokens(tokenizer, USER)
    response = await gw.http.post("/v1/chat/completions", json=chat(max_tokens=MAX_MODEL_LEN - n + 1))
    error = assert_openai_error(response, 400, f"prompt tokens ({n})", f"max_tokens ({MAX_MODEL_LEN - n + 1})",
                                f"max_model_len {MAX_MODEL_LEN}")
    assert error["code"] == "context_length_exceeded" and error["param"] == "max_tokens"
    assert await gw.engine.queued() == 0


async def test_prompt_alone_over_the_limit(gw, tokenizer):
    messages = [{"role": "user", "content": "word " * MAX_MODEL_LEN}]
    n = _prompt_tokens(tokenizer, messages)
    response = await gw.http.post("/v1/chat/completions", json=chat(messages=messages))
    error = assert_openai_error(response, 400, f"the prompt has {n} tokens", f"max_model_len {MAX_MODEL_LEN}")
    assert error["param"] == "messages" and error["code"] == "context_length_exceeded"
    response = await gw.http.post("/v1/completions", json={"model": MODEL, "prompt": list(range(MAX_MODEL_LEN))})
    assert_openai_error(response, 400, f"the prompt has {MAX_MODEL_LEN} tokens")


async def test_plan_over_the_limit_counts_prompt_generated_and_returned(gw, tokenizer):
    n = _prompt_tokens(tokenizer, USER)
    generated = MAX_MODEL_LEN - n - 10
    body = chat(plan=plan({"generate_tokens": generated - 5, "api": "calculator", "return_tokens": 11},
                          {"generate_tokens": 5}))
    error = assert_openai_error(await gw.http.post("/v1/chat/completions", json=body), 400,
                                f"the plan needs {MAX_MODEL_LEN + 1} tokens", f"prompt {n}",
                                f"generated {generated}", "returned 11", f"max_model_len {MAX_MODEL_LEN}")
    assert error["param"] == "plan"
    assert await gw.engine.queued() == 0


async def test_body_over_the_limit_by_content_length(start_gateway):
    gw = await start_gateway(max_body_bytes=4096)
    body = json.dumps(chat(messages=[{"role": "user", "content": "x" * 5000}])).encode()
    response = await gw.http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 413, f"{len(body)} bytes", "limit of 4096 bytes")
    assert error["code"] == "request_too_large"


async def test_body_over_the_limit_by_bytes_read(start_gateway):
    """No Content-Length (chunked upload): the bytes actually read are counted."""
    gw = await start_gateway(max_body_bytes=4096)
    sent = []

    async def chunks():
        for _ in range(10):
            sent.append(1)
            yield b" " * 1000

    response = await gw.http.post("/v1/chat/completions", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_openai_error(response, 413, "limit of 4096 bytes")
    assert await gw.engine.queued() == 0


COMPLETION_CASES = [
    ("missing-prompt", {"model": MODEL}, "prompt", ["prompt: Field required"]),
    ("empty-prompt", {"model": MODEL, "prompt": ""}, "prompt", ["prompt is empty"]),
    ("batched-prompt", {"model": MODEL, "prompt": ["a", "b"]}, "prompt", ["batched prompts are not supported"]),
    ("prompt-wrong-type", {"model": MODEL, "prompt": {"text": "a"}}, "prompt", ["prompt"]),
    ("token-out-of-vocab", {"model": MODEL, "prompt": [1, 2, 10**7]}, "prompt", ["10000000", "outside the vocabulary"]),
    ("negative-token", {"model": MODEL, "prompt": [-1]}, "prompt", ["[-1]", "outside the vocabulary"]),
    ("max-tokens-zero", {"model": MODEL, "prompt": "a", "max_tokens": 0}, "max_tokens", ["max_tokens"]),
    ("over-the-limit", {"model": MODEL, "prompt": "a", "max_tokens": MAX_MODEL_LEN}, "max_tokens",
     [f"max_tokens ({MAX_MODEL_LEN})", f"max_model_len {MAX_MODEL_LEN}"]),
    ("echo", {"model": MODEL, "prompt": "a", "echo": True}, "echo", ["echo is not supported"]),
    ("suffix", {"model": MODEL, "prompt": "a", "suffix": "b"}, "suffix", ["suffix is not supported"]),
    ("prompt-logprobs", {"model": MODEL, "prompt": "a", "prompt_logprobs": 1}, "prompt_logprobs",
     ["prompt_logprobs is not supported"]),
    ("no-special-tokens", {"model": MODEL, "prompt": "a", "add_special_tokens": False}, "add_special_tokens",
     ["add_special_tokens is not supported"]),
    ("logprobs-range", {"model": MODEL, "prompt": "a", "logprobs": 21}, "logprobs", ["less than or equal to 20"]),
    ("bad-schema", {"model": MODEL, "prompt": "a", "guided_json": {"type": 5}}, "guided_json",
     ["not a valid JSON schema"]),
    ("bad-plan", {"model": MODEL, "prompt": "a", "plan": plan({"generate_tokens": -1})},
     "plan.segments.0.generate_tokens", ["plan.segments.0.generate_tokens"]),
]


@pytest.mark.parametrize("body,param,needles", [c[1:] for c in COMPLETION_CASES], ids=[c[0] for c in COMPLETION_CASES])
async def test_bad_completion_request(gw, body, param, needles):
    response = await gw.http.post("/v1/completions", json=body)
    assert assert_openai_error(response, 400, *needles)["param"] == param
    assert response.headers["x-request-id"].startswith("cmpl-")
    assert await gw.engine.queued() == 0


async def test_bad_program_id_header(gw):
    response = await gw.http.post("/v1/chat/completions", json=chat(), headers={"X-Program-Id": "p" * 300})
    assert assert_openai_error(response, 400, "header.X-Program-Id", "at most 256")["param"] == "header.X-Program-Id"


async def test_unknown_route_and_method(gw):
    assert_openai_error(await gw.http.get("/v1/nothing"), 404, "Not Found")
    assert_openai_error(await gw.http.get("/v1/chat/completions"), 405, "Method Not Allowed")
