"""Stand-ins: durations (explicit or drawn from the trace distribution) and exact word counts."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_executor.errors import ToolError
from api_executor.kinds import chatbot, image, standin, tts
from common.schemas import ToolCallTask


def _call(api: str, i: int = 0, **fields: object) -> ToolCallTask:
    fields.setdefault("arguments", {})
    return ToolCallTask(call_id=f"c{i}", request_id="r", api=api, reply_to="s", **fields)


@pytest.mark.parametrize(("spec", "mean", "lo", "hi", "words", "marker"), [
    (chatbot.SPEC, 28.2, 1.0, 60.0, 42, "[user follow-up]"),
    (image.SPEC, 11.5, 0.1, 600.0, 25, "[image generated"),
    (tts.SPEC, 6.1, 0.5, 600.0, 25, "[speech synthesized:"),
])
def test_drawn_durations_follow_the_trace(spec: standin.StandInSpec, mean: float, lo: float, hi: float,
                                          words: int, marker: str) -> None:
    plans = [standin.plan(spec, _call(spec.kind, i), time_scale=0.5) for i in range(400)]
    durations = [p.duration_s for p in plans]
    assert all(lo <= d <= hi for d in durations)
    assert statistics.fmean(durations) == pytest.approx(mean, rel=0.15)
    assert all(p.wait_s == pytest.approx(p.duration_s * 0.5) for p in plans)
    assert all(len(p.content.split()) == words and p.content.startswith(marker) for p in plans)


def test_explicit_duration_is_waited_exactly() -> None:
    by_field = standin.plan(image.SPEC, _call("image", duration_s=0.5), time_scale=0.01)
    assert (by_field.duration_s, by_field.wait_s) == (0.5, 0.5)


def test_a_duration_among_the_arguments_is_ignored() -> None:
    """The arguments are the model's (a prompt can ask for any): the wait is drawn, as without."""
    by_argument = standin.plan(image.SPEC, _call("image", 3, arguments={"duration_s": 3600}), time_scale=0.01)
    assert by_argument == standin.plan(image.SPEC, _call("image", 3), time_scale=0.01)
    assert by_argument.duration_s <= image.SPEC.max_s


def test_same_call_same_plan() -> None:
    """A re-run of one call (acks_late) plans the same duration and text."""
    assert standin.plan(chatbot.SPEC, _call("chatbot", 7), 1.0) == standin.plan(chatbot.SPEC, _call("chatbot", 7), 1.0)


@given(st.integers(0, 500), st.sampled_from([chatbot.SPEC, image.SPEC, tts.SPEC]))
def test_exact_word_count(n: int, spec: standin.StandInSpec) -> None:
    plan = standin.plan(spec, _call(spec.kind, return_tokens=n, arguments={"prompt": "a red fox", "text": "hi"}), 1.0)
    assert len(plan.content.split()) == n


def test_image_mentions_the_prompt() -> None:
    plan = standin.plan(image.SPEC, _call("image", arguments={"prompt": "a red fox in snow"}), 1.0)
    assert plan.content.startswith("[image generated: a red fox in snow]")


@pytest.mark.parametrize("bad", [-1, 3601, "soon", float("nan"), True])
def test_bad_duration(bad: object) -> None:
    with pytest.raises(ToolError, match="duration_s"):
        # Past the schema (a message from elsewhere): the kind checks again.
        call = ToolCallTask.model_construct(call_id="c0", request_id="r", api="tts", arguments={}, duration_s=bad,
                                            return_tokens=None, reply_to="s", traceparent=None)
        standin.plan(tts.SPEC, call, 1.0)
