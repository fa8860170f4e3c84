"""Prompts of an exact length, counted as the gateway counts them (needs the tiny model's tokenizer)."""

from __future__ import annotations

import random

import pytest

from bench.prompts import PromptBuilder
from stack.models import build_tiny


@pytest.fixture(scope="module")
def builder() -> PromptBuilder:
    return PromptBuilder(str(build_tiny()))


@pytest.mark.parametrize("tokens", [34, 35, 100, 517, 1973])
def test_the_templated_prompt_has_exactly_the_requested_tokens(builder, tokens):
    text = builder.build(tokens, random.Random(tokens))
    assert builder.count(text) == tokens


def test_prompts_differ_per_request_so_the_prefix_cache_cannot_share_them(builder):
    a, b = builder.build(200, random.Random(1)), builder.build(200, random.Random(2))
    assert a.split()[:8] != b.split()[:8]


def test_the_gateway_counts_the_same(builder):
    """The gateway's own renderer, in-process, gives the same prompt length."""
    from pathlib import Path

    from gateway.prompts import PromptRenderer
    from gateway.protocol import ChatCompletionRequest
    from gateway.settings import SMOLLM_DEFAULT_SYSTEM

    renderer = PromptRenderer(Path(builder.model_path), default_system=SMOLLM_DEFAULT_SYSTEM, http_apis=set())
    try:
        for tokens in (40, 150, 600):
            text = builder.build(tokens, random.Random(tokens))
            request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": text}])
            assert len(renderer.render_chat(request).token_ids) == tokens
    finally:
        renderer.close()
