"""The whole stack as real processes: Redis, Celery executor, estimator, vLLM engine worker on
the default model (SmolLM2-135M-Instruct), gateway over HTTP. Started once per test session, with
traces on: every service exports its spans over OTLP/HTTP to an in-test receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.models import build_default, build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig
from tests.otlp_receiver import OtlpReceiver

TIME_SCALE = 0.02
"""Stand-in APIs (chatbot, image, tts) wait 2% of their trace durations in these tests."""

EXACT_DTYPE = "float32"
"""The shared stack's engine dtype, set rather than left to `auto` (bfloat16 on CPUs with AVX512-BF16
or AMX): its tests assert what the real model generates, token for token. In bfloat16 a context
computed by prefill and the same context computed token by token round differently, so greedy
decoding flips at near-ties with no pause involved (measured: 4 of 15 continuations re-submitted
over their own first 10/20/30 tokens differed from the uninterrupted decode; 0 of 15 in float32),
and which tool calls the model makes changes with the machine."""


def running(cfg: StackConfig) -> Iterator[Stack]:
    """A fixture's body: the stack started, yielded, stopped however the tests ended
    (`yield from running(cfg)`)."""
    started = Stack(cfg).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, otlp) -> Iterator[Stack]:
    cfg = StackConfig(
        model_path=str(build_default()), state_dir=tmp_path_factory.mktemp("stack"),
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=TIME_SCALE,
        executor_concurrency=2, worker_env={"AUGSERVE_API_CALL_TIMEOUT_S": "30", "AUGSERVE_DTYPE": EXACT_DTYPE},
        otlp_endpoint=otlp.endpoint,
    )
    yield from running(cfg)


@pytest.fixture(scope="session")
def gateway_url(stack) -> str:
    return stack.cfg.gateway_url


@pytest.fixture(scope="session")
def model_path(stack) -> str:
    return stack.cfg.model_path


def tiny_fault_stack(state_dir, call_timeout_s: float) -> StackConfig:
    """The fault tests' own stack: the tiny model, real call durations, a 1 s heartbeat (a dead
    worker is noticed in 5 s), and the engine worker's per-call deadline that a fault must beat."""
    return StackConfig(
        model_path=str(build_tiny()), state_dir=state_dir,
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=1.0,
        worker_env={"AUGSERVE_API_CALL_TIMEOUT_S": str(call_timeout_s), "AUGSERVE_KV_CACHE_BYTES": str(64 << 20),
                    "AUGSERVE_MAX_MODEL_LEN": "512", "AUGSERVE_HEARTBEAT_S": "1"},
        gateway_env={"AUGSERVE_MAX_MODEL_LEN": "512"},
    )
