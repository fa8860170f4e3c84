"""replay: a request's output events folded into what a live worker continues it from."""

from __future__ import annotations

import pytest

from common.schemas import CallEvent, DeltaEvent, ErrorEvent, FinalEvent, InterceptionEvent, InterceptionRecord, Usage
from engine_worker.checkpoint import replay


def delta(text: str, *tokens: int) -> DeltaEvent:
    return DeltaEvent(text=text, token_ids=list(tokens))


def call(call_id: str, segment_text: str, context_tokens: int) -> CallEvent:
    return CallEvent(call_id=call_id, api="chatbot", arguments={}, duration_s=2.0, return_tokens=2, started_at=100.0,
                     context_tokens=context_tokens, segment_text=segment_text, reply_to="augserve:tool-results:w0")


def result(call_id: str, *appended: int) -> InterceptionEvent:
    record = InterceptionRecord(call_id=call_id, api="chatbot", arguments={}, started_at=100.0, ended_at=102.0,
                                duration_s=2.0, context_tokens=0, returned_tokens=len(appended), result="ok", ok=True)
    return InterceptionEvent(record=record, appended_token_ids=list(appended))


FINAL = FinalEvent(finish_reason="stop", text="", token_ids=[], usage=Usage(prompt_tokens=1, completion_tokens=0,
                                                                             total_tokens=1), interceptions=[])


def test_no_events_is_an_empty_checkpoint():
    cp = replay([])
    assert cp.empty and not cp.ended and cp.pending is None and cp.segment_index == 0


def test_an_open_first_segment_has_its_tokens_and_streamed_text():
    cp = replay([delta("He", 1), delta("", 2, 3), delta("llo", 4)])
    assert cp.open_tokens == [1, 2, 3, 4] and cp.open_text == "Hello"
    assert cp.generated == [] and cp.context_tail == [] and cp.segment_index == 0 and cp.pending is None


def test_a_request_paused_at_a_call_without_its_result_is_pending_on_that_call():
    cp = replay([delta("a", 1), delta("b", 2), call("c1", "ab", context_tokens=12)])
    assert cp.pending is not None and cp.pending.call_id == "c1"
    assert cp.generated == [1, 2] and cp.context_tail == [1, 2] and cp.visible == ["ab"]
    assert cp.open_tokens == [] and cp.open_text == "" and cp.segment_index == 0


def test_a_result_appends_its_tokens_and_opens_the_next_segment():
    cp = replay([delta("a", 1, 2), call("c1", "a", 12), result("c1", 50, 51), delta("x", 3)])
    assert cp.pending is None and cp.segment_index == 1
    assert cp.generated == [1, 2] and cp.context_tail == [1, 2, 50, 51] and cp.open_tokens == [3]
    assert [r.call_id for r in cp.interceptions] == ["c1"] and cp.visible == ["a"]


def test_two_calls_keep_context_order_generated_then_appended():
    events = [delta("a", 1), call("c1", "a", 11), result("c1", 50), delta("b", 2, 3), call("c2", "b", 14),
              result("c2", 60, 61), delta("c", 4)]
    cp = replay(events)
    assert cp.context_tail == [1, 50, 2, 3, 60, 61] and cp.generated == [1, 2, 3] and cp.open_tokens == [4]
    assert cp.segment_index == 2 and cp.visible == ["a", "b"] and len(cp.interceptions) == 2


@pytest.mark.parametrize("last", [FINAL, ErrorEvent(status=500, code="engine_error", message="boom")])
def test_a_final_or_error_event_ends_it(last):
    assert replay([delta("a", 1), last]).ended


def test_streamed_text_and_logprobs_count_over_every_segment():
    """A survivor resumes the stop-string scan where the stream stood (text held back as a
    possible stop string's start was never streamed) and keeps the logprobs already sent."""
    from common.schemas import TokenLogprob

    lp = [TokenLogprob(token="a", logprob=-0.1)]
    cp = replay([DeltaEvent(text="ab", token_ids=[1], logprobs=lp), call("c1", "ab O", 1), result("c1", 9),
                 DeltaEvent(text="", token_ids=[2], logprobs=lp)])
    assert cp.streamed == 2 and cp.visible == ["ab O"] and cp.logprobs == lp + lp
