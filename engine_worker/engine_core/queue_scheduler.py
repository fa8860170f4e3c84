"""vLLM's scheduler with the queue order chosen by a policy (engine_worker/policies/schedulers.py).

Loaded by vLLM in the engine-core process (engine_worker/engine.py passes it as `scheduler_cls`). Every k
steps it snapshots the requests it holds (running, waiting, and sessions paused at a call with
their KV preserved) and asks the configured policy (fcfs, fastserve, lamps, continuum, autellix)
for a total order; each request's vLLM `priority` becomes its rank, so the stock priority
scheduler admits in that order and preempts from its end. After each step it reports to the
policy which requests ran and their share of the step's time (attained service). A preemptive
policy (FastServe's MLFQ) also gets running slots handed over by rank before each step
(engine_worker/policies/preemption.py): vLLM itself preempts only when blocks run out.

What the policy needs to know about a request and the engine does not (its ORIGINAL arrival, its
program, the calls it has made, the kind of its next call) comes in the request's sampling
params as `extra_args["augserve"]` (engine_worker/session.py; common.schemas.SchedulingFacts); a request is
tracked under the worker's id for it, so a request resubmitted after a discard keeps its attained
service.
"""

from __future__ import annotations

import heapq
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from vllm.logger import init_logger
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus

from common.schemas import SchedulingFacts
from engine_worker import profile_store
from engine_worker.engine_params import REQUEST_INFO
from engine_worker.policies.cost_model import GPTJ_A100, CostModel
from engine_worker.policies.preemption import time_slice_victims
from engine_worker.policies.queue_order import QueuedRequest, RequestState, ranks
from engine_worker.policies.schedulers import SchedulerName, make_scheduler

log = init_logger(f"vllm.{__name__}")  # under "vllm": the only logger the engine-core process configures

CONFIG_KEY = "augserve_scheduler"
"""The key of this scheduler's settings in vLLM's `additional_config`."""
FORGET_AFTER_S = 900.0


class QueueSchedulerConfig(BaseModel):
    name: SchedulerName = SchedulerName.FCFS
    options: dict = {}
    every: int = 1
    """Re-order every this many steps."""
    profile_path: str = ""
    """The measured cost model (engine_worker/cost_profile.py); the policies that need costs read it."""


def _cost_model(path: str) -> CostModel:
    profile = profile_store.load(Path(path)) if path else None
    if profile is not None:
        return profile.cost_model
    log.warning("no cost profile at %r yet: the scheduler uses the paper's GPT-J/A100 costs", path)
    return GPTJ_A100


class PolicyScheduler(Scheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        raw = (self.vllm_config.additional_config or {}).get(CONFIG_KEY, {})
        self._config = QueueSchedulerConfig(**raw)
        self._policy = make_scheduler(self._config.name, _cost_model(self._config.profile_path),
                                      **self._config.options)
        self._steps = 0
        self._last_step: tuple[float, dict[str, int]] | None = None
        """When the previous step was scheduled and the tokens each request ran in it."""
        self._attained: dict[str, float] = {}
        self._last_ran: dict[str, float] = {}
        self._state_since: dict[str, tuple[str, float]] = {}
        """Each request's state at the last re-order and since when it has been in it."""
        self._parsed: dict[str, tuple[dict | None, SchedulingFacts]] = {}
        """vLLM request id -> (the extra_args entry, its parse): see _facts."""
        self._preemptive = bool(getattr(self._policy, "preemptive", False))
        log.info("queue order: %s %s, re-ordered every %d steps", self._config.name, self._config.options,
                 self._config.every)

    def schedule(self, *args, **kwargs):
        now = time.time()
        self._observe_previous_step(now)
        if self._steps % self._config.every == 0:
            self._reorder(now)
            if self._preemptive:
                self._hand_over_slots(now)
        self._steps += 1
        output = super().schedule(*args, **kwargs)
        keys = {r.request_id: self._key(r) for r in self.running}
        self._last_step = (time.time(), {keys.get(rid, rid): n for rid, n in output.num_scheduled_tokens.items()})
        return output

    # -- attained service -------------------------------------------------------------------------
    def _observe_previous_step(self, now: float) -> None:
        if self._last_step is None:
            return
        started, tokens = self._last_step
        total = sum(tokens.values())
        step_s = max(0.0, now - started)
        ran = {key: step_s * n / total for key, n in tokens.items()} if total else {}
        for key, seconds in ran.items():
            self._attained[key] = self._attained.get(key, 0.0) + seconds
            self._last_ran[key] = now
        self._policy.observe(ran, now)

    # -- ordering ----------------------------------------------------------------------------------
    def _facts(self, request) -> SchedulingFacts:
        """What the session said of `request` (common.schemas.SchedulingFacts; for a request no
        session sent, what vLLM knows). Parsed once per chunk: a session's next chunk replaces its
        sampling params, and with them the dict."""
        params = request.sampling_params
        raw = (params.extra_args or {}).get(REQUEST_INFO) if params is not None else None
        cached = self._parsed.get(request.request_id)
        if cached is not None and cached[0] is raw:
            return cached[1]
        if raw is not None:
            facts = SchedulingFacts.model_validate(raw)
        else:
            facts = SchedulingFacts(id=request.request_id, arrival=request.arrival_time, program=None, calls_done=0,
                                    generated=0, api=None, call_s=None, expect_tokens=None)
        self._parsed[request.request_id] = (raw, facts)
        return facts

    def _key(self, request) -> str:
        return self._facts(request).id

    def _snapshot(self, request, state: RequestState, now: float) -> QueuedRequest:
        facts = self._facts(request)
        key = facts.id
        previous = self._state_since.get(key)
        since = previous[1] if previous is not None and previous[0] == state else now
        self._state_since[key] = (state, since)
        last_ran = self._last_ran.get(key)
        # Back from a call, a request waits from its re-enqueueing, not from its last step before
        # the call: the call's time is not time the scheduler made it wait.
        enqueued = since if state == "waiting" else None
        return QueuedRequest(
            request_id=key, arrival_s=facts.arrival, state=state, context_tokens=request.num_tokens,
            generated_tokens=facts.generated + request.num_output_tokens,
            program_id=facts.program, attained_s=self._attained.get(key, 0.0),
            last_scheduled_s=max((t for t in (last_ran, enqueued) if t is not None), default=None),
            calls_done=facts.calls_done, predicted_output_tokens=facts.expect_tokens, api_kind=facts.api,
            predicted_call_s=facts.call_s)

    def _reorder(self, now: float) -> None:
        held: list[tuple[Request, RequestState]] = [(r, "running") for r in self.running]
        for queue in (self.waiting, self.kv_holding_waiting):
            for r in queue:
                paused = r.status == RequestStatus.WAITING_FOR_STREAMING_REQ
                held.append((r, "paused" if paused else "waiting"))
        snapshots, requests = {}, {}
        for request, state in held:
            snap = self._snapshot(request, state, now)
            if snap.request_id in snapshots:  # the same logical request twice: keep the live one
                continue
            snapshots[snap.request_id] = snap
            requests[snap.request_id] = request
        rank = ranks(self._policy.order(list(snapshots.values()), now))
        for key, request in requests.items():
            request.priority = rank[key]
        for queue in (self.waiting, self.kv_holding_waiting):
            heap = getattr(queue, "_heap", None)
            if heap is not None:  # the priority policy's heap: re-establish it under the new ranks
                heapq.heapify(heap)
        # A request away at a call is not in the engine but keeps its attained service: forget
        # only those not seen for a long while (finished or failed).
        for key in [k for k, t in self._last_ran.items() if k not in snapshots and now - t > FORGET_AFTER_S]:
            del self._last_ran[key]
            self._attained.pop(key, None)
        for key in [k for k in self._state_since if k not in snapshots]:
            del self._state_since[key]
        held_ids = {r.request_id for r, _ in held}
        for request_id in [k for k in self._parsed if k not in held_ids]:
            del self._parsed[request_id]

    # -- time slicing ------------------------------------------------------------------------------
    def _running_since(self, request, now: float) -> float:
        """When it was (re-)admitted, as _reorder last saw it (now if it was not seen running)."""
        state, since = self._state_since.get(self._key(request), ("running", now))
        return since if state == "running" else now

    def _hand_over_slots(self, now: float) -> None:
        """Preempts the running requests that better-ranked waiting ones displace (the ranks were
        just set by _reorder). Only requests ready to run now count as waiting: one still loading
        its KV or paused at a call cannot use a slot this step."""
        ready = (RequestStatus.WAITING, RequestStatus.PREEMPTED)
        waiting = [(r.request_id, r.priority) for r in self.waiting if r.status in ready]
        if not waiting or not self.running:
            return
        free = self.max_num_active_reqs - len(self.running) - self.num_waiting_for_streaming_input
        # Only those that have run long enough for their recompute to be worth it may be displaced.
        displaceable = {r.request_id: r for r in self.running
                        if self._policy.preemptible(  # type: ignore[attr-defined]  # a preemptive order's
                            r.num_computed_tokens, now - self._running_since(r, now))}
        victims = time_slice_victims({rid: r.priority for rid, r in displaceable.items()}, waiting, max(0, free))
        timestamp = time.monotonic()
        for request_id in victims:
            request = displaceable[request_id]
            if not self._request_blocks_can_be_freed(request):
                continue  # an in-flight step may still write its blocks: next time
            self.running.remove(request)
            self._preempt_request(request, timestamp, drop_stale_output=self.requires_kv_delivery)
            # It may be re-admitted in this same step: its token ids must be sent in full again.
            self.prev_step_scheduled_req_ids.discard(request_id)
            log.debug("time slice: %s gives its slot to a better-ranked request", self._key(request))
