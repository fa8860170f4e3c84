"""The trace loader and request classification, on small tables and on the real trace file."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.trace import DEFAULT_TRACE, call_kind, classify, load_trace, parse_segment

HEX = "0a84bcdff8434b23971032489f44b90a"
CALC = {"prompt_tokens": 392, "completion_tokens": 127, "api_time": 0.00008, "api_token_length": 21}
SEARCH = {"prompt_tokens": 934, "completion_tokens": 100, "api_time": 0.7, "api_token_length": 57}
TEXT = {"prompt": "p" * 400, "completion": "c" * 40, "api_time": 11.5, "api_token": "r" * 8}
TOKENS = {"prompt_tokens": 1973, "completion_tokens": 4, "api_time": 0.1, "api_token_length": 2}
LAST_TEXT = {"prompt": "p" * 40, "completion": "c" * 8}


@pytest.mark.parametrize(("key", "segments", "expected"), [
    (HEX, [CALC, {"prompt_tokens": 540, "completion_tokens": 47}], "math"),
    (HEX, [SEARCH, {"prompt_tokens": 1100, "completion_tokens": 80}], "qa"),
    # A search recorded as taking 0 s: the QA-sized prompt still says QA.
    (HEX, [{**SEARCH, "api_time": 0.0}, {"prompt_tokens": 1100, "completion_tokens": 80}], "qa"),
    ("12_1", [TEXT, LAST_TEXT], "tts"),
    ("12_2", [TEXT, LAST_TEXT], "image"),
    ("12_3", [TEXT, LAST_TEXT], "image"),
    ("12_2", [TOKENS, TOKENS], "ve"),
    ("12", [TEXT, LAST_TEXT], "chatbot"),
    ("12", [TOKENS, TOKENS], "ve"),
])
def test_classify_by_key_shape_and_form(key, segments, expected):
    assert classify(key, segments) == expected


def test_unknown_key_shape_is_refused():
    with pytest.raises(ValueError, match="no known shape"):
        classify("abc", [TOKENS])


@pytest.mark.parametrize(("request_type", "index", "api"), [
    ("math", 0, "calculator"), ("qa", 3, "qa"), ("ve", 1, "ve"), ("chatbot", 2, "chatbot"),
    ("tts", 0, "tts"), ("tts", 1, "chatbot"), ("tts", 2, "tts"),
    ("image", 0, "image"), ("image", 1, "chatbot"), ("image", 4, "image"),
])
def test_call_kind_alternates_tool_and_human_turns(request_type, index, api):
    assert call_kind(request_type, index) == api


def test_text_segments_count_four_characters_per_token():
    seg = parse_segment(TEXT)
    assert (seg.prompt_tokens, seg.completion_tokens, seg.api_time_s, seg.api_tokens) == (100, 10, 11.5, 2)
    last = parse_segment(LAST_TEXT)
    assert (last.api_time_s, last.api_tokens) == (None, None)


def test_any_file_of_the_format_loads(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({HEX: [CALC, {"prompt_tokens": 540, "completion_tokens": 47}], "7": [TEXT, LAST_TEXT]}))
    requests = load_trace(path)
    assert [(r.key, r.type, r.num_calls) for r in requests] == [(HEX, "math", 1), ("7", "chatbot", 1)]


def test_the_real_trace_has_the_readme_counts_per_type():
    requests = load_trace(DEFAULT_TRACE)
    assert len(requests) == 397
    assert Counter(r.type for r in requests) == {"math": 98, "qa": 50, "ve": 54, "chatbot": 65, "image": 65, "tts": 65}
    # The README's call time column: the tool calls of TTS and Image sit at even segments.
    for request_type, mean_s in (("tts", 6.1), ("image", 11.5)):
        times = [s.api_time_s for r in requests if r.type == request_type
                 for i, s in enumerate(r.segments) if i % 2 == 0 and s.api_time_s is not None]
        assert sum(times) / len(times) == pytest.approx(mean_s, abs=0.1)
