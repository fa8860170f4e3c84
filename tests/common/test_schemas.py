"""The cross-process models that have no service test of their own (common/schemas.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.schemas import SchedulingFacts

FACTS = dict(id="r1", arrival=12.5, program="p", calls_done=2, generated=40, api="qa", call_s=None,
             expect_tokens=64)


def test_scheduling_facts_cross_vllms_wire_as_a_dict():
    """The worker sends model_dump() in a request's extra_args; the engine core parses it back."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.serial_utils import MsgpackDecoder, MsgpackEncoder

    from engine_worker.engine_params import REQUEST_INFO

    sent = SamplingParams(max_tokens=4, extra_args={REQUEST_INFO: SchedulingFacts(**FACTS).model_dump()})
    received = MsgpackDecoder(SamplingParams).decode(MsgpackEncoder().encode(sent))
    assert SchedulingFacts.model_validate(received.extra_args[REQUEST_INFO]) == SchedulingFacts(**FACTS)


@pytest.mark.parametrize(("right", "wrong"), [("calls_done", "calls_don"), ("expect_tokens", "expect_token")])
def test_scheduling_facts_refuse_a_misspelt_key(right, wrong):
    raw = {k: v for k, v in FACTS.items() if k != right} | {wrong: FACTS[right]}
    with pytest.raises(ValidationError):
        SchedulingFacts.model_validate(raw)
