"""How often a model's tool-call arguments are valid, with and without constrained decoding.

`python -m bench.tool_args --url http://127.0.0.1:8000 [--out FILE]` runs the shipped set
(bench/data/tool_calls.json: 40 prompts over 4 client-side tools with JSON schemas) through the
official openai client, greedy, in four modes:

- `named`: tool_choice names the right tool, arguments generated under its schema (the default);
- `named-unconstrained`: the same with `constrain_tool_calls: false` (the model writes the JSON);
- `required`: tool_choice "required" over all 4 tools, constrained (the model picks the tool);
- `auto`: tool_choice omitted: the model's own choice, parsed as written.

Per mode: calls made, arguments that parse as JSON, that validate against the tool's schema, the
right tool chosen, the expected value in the arguments (the expression evaluates to the answer,
the city or query named, the number to convert), and answers cut at the token cap (finish_reason
"length": a constrained call cut there comes back as written, so it neither parses nor validates).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema

DATA = Path(__file__).parent / "data" / "tool_calls.json"
MODES = ("named", "named-unconstrained", "required", "auto")


def _evaluate(expression: str) -> float | None:
    from api_executor.kinds.calculator import evaluate

    try:
        return float(evaluate(expression))
    except Exception:  # a wrong expression is a miss, whatever the error
        return None


def expected_value(case: dict[str, Any], args: dict[str, Any]) -> bool:
    expect = case["expect"]
    if case["tool"] == "calculate":
        got = _evaluate(str(args.get("expression", "")))
        return got is not None and abs(got - expect["value"]) < 1e-6
    if case["tool"] == "web_search":
        return expect["query_contains"].lower() in str(args.get("query", "")).lower()
    if case["tool"] == "get_weather":
        return expect["city"].lower() in str(args.get("city", "")).lower()
    return args.get("value") == expect["value"]


def score(case: dict[str, Any], tools: dict[str, dict], message: Any) -> dict[str, bool]:
    """One answer's marks: called, parsed, valid (schema), right tool, right value."""
    calls = message.tool_calls or []
    marks = {"called": bool(calls), "parsed": False, "valid": False, "right_tool": False, "right_value": False}
    if not calls:
        return marks
    call = calls[0].function
    marks["right_tool"] = call.name == case["tool"]
    try:
        args = json.loads(call.arguments)
    except ValueError:
        return marks
    marks["parsed"] = isinstance(args, dict)
    schema = tools.get(call.name, {}).get("function", {}).get("parameters")
    if marks["parsed"] and schema is not None:
        try:
            jsonschema.validate(args, schema)
            marks["valid"] = True
        except jsonschema.ValidationError:
            pass
        marks["right_value"] = marks["right_tool"] and expected_value(case, args)
    return marks


def request(mode: str, case: dict[str, Any], tools: list[dict]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": case["prompt"]}], "tools": tools,
                              "temperature": 0, "max_tokens": 96}
    if mode.startswith("named"):
        kwargs["tool_choice"] = {"type": "function", "function": {"name": case["tool"]}}
        kwargs["extra_body"] = {"constrain_tool_calls": mode == "named"}
    elif mode == "required":
        kwargs["tool_choice"] = "required"
    return kwargs


def run(url: str, model: str, modes: tuple[str, ...], concurrency: int = 8) -> dict[str, Any]:
    import openai

    data = json.loads(DATA.read_text())
    tools = {t["function"]["name"]: t for t in data["tools"]}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused-locally", max_retries=0, timeout=300)
    report: dict[str, Any] = {"cases": len(data["cases"]), "model": model, "modes": {}}
    for mode in modes:
        totals = {"called": 0, "parsed": 0, "valid": 0, "right_tool": 0, "right_value": 0, "cut": 0}

        def one(case: dict[str, Any]) -> dict[str, bool]:
            response = client.chat.completions.create(model=model, **request(mode, case, data["tools"]))
            choice = response.choices[0]
            return score(case, tools, choice.message) | {"cut": choice.finish_reason == "length"}

        # Concurrent requests batch in the engine; greedy answers do not depend on the batch.
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for marks in pool.map(one, data["cases"]):
                for name, ok in marks.items():
                    totals[name] += ok
        report["modes"][mode] = {name: round(count / len(data["cases"]), 3) for name, count in totals.items()}
        print(mode, report["modes"][mode], flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = run(args.url, args.model, tuple(m for m in args.modes.split(",") if m), args.concurrency)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
