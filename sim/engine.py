"""One engine, iteration by iteration: the mechanism around the SAME policy objects the worker runs.

Each iteration at time `now`:
  1. arrivals join the waiting queue; calls that returned append their result tokens and their
     request waits to resume (KV still on device if preserved; on host if swapped; gone if
     discarded, where the prefix cache may still hold its full blocks);
  2. the handling policy (handling.POLICIES[name], unchanged) decides for the paused requests
     whose KV is still on device, at every pause and every `policy_interval_s`, from the same
     PausedRequest/BatchState snapshots the worker's InterceptController builds;
  3. the queue order (schedulers.make_scheduler, unchanged) ranks every request held (running,
     waiting, paused with KV on device); a preemptive order hands running slots over by rank
     (preemption.time_slice_victims, as engine_core/queue_scheduler.py does), the displaced request's KV freed
     (recompute) or, with Deployment.preemption = "swap", copied to host like a paused one's;
  4. scheduling as vLLM V1 with priorities: running requests first in rank order (one decode
     token, or the next prefill chunk), each new block allocated or, when the pool is full, the
     lowest-ranked running request preempted (recompute); then waiting ones in rank order while
     slots, blocks and the token budget last (the first that does not fit ends admission);
     a request whose KV is on host is admitted with its blocks and loads them over the next
     iterations within the swap budget before it runs (pipelined: copies hide under the
     forward pass, T_swap(budget) = T_fwd(batch)), copies out likewise free their blocks when done;
  5. the iteration lasts T_fwd(batched tokens) (+ step overhead, + reading the KV each batched
     request attends to: Deployment.kv_read_s_per_token); prefills that complete and
     decodes sample one token each; a segment that reaches its length pauses at its call or ends
     the request; the queue order observes each request's share of the step.
When nothing can run the clock jumps to the next arrival, call return or policy tick.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from common.schemas import Strategy
from engine_worker.intercept_controller import HIGH_KV_USAGE
from engine_worker.policies.duration import DurationMode, expected_duration
from engine_worker.policies.handling import POLICIES, PolicyName
from engine_worker.policies.handling_types import BatchState, PausedRequest
from engine_worker.policies.output_length import OutputLengthHistory
from engine_worker.policies.preemption import time_slice_victims
from engine_worker.policies.queue_order import QueuedRequest, RequestState, ranks
from engine_worker.policies.schedulers import make_scheduler
from sim.blocks import BlockPool
from sim.hardware import Deployment
from sim.state import Interception, ReqState
from sim.workload import SimRequest

POLICY_INTERVAL_S = 0.05
"""The worker's AUGSERVE_POLICY_INTERVAL_S default."""


@dataclass(frozen=True)
class StepStats:
    """One iteration, for the invariant tests and the operator's logs."""
    start_s: float
    duration_s: float
    batched_tokens: int
    batched_requests: int
    running: int
    slots_held: int
    swapped_tokens: int
    swap_budget_tokens: int
    free_blocks: int
    host_tokens: int


@dataclass
class SimConfig:
    policy: str = "infercept-on-demand"
    scheduler: str = "fcfs"
    scheduler_options: dict = field(default_factory=dict)
    duration_mode: DurationMode = "elapsed"
    policy_interval_s: float = POLICY_INTERVAL_S
    horizon_s: float | None = None
    """Stop the clock here (window + drain); None: run until every request is done."""
    record_steps: bool = False
    swap_budget_basis: Literal["running-context", "step-tokens"] = "running-context"
    """The swap budget the handling policy is told, T_fwd(x) / T_swap per token: x = the running
    requests' context tokens, as the worker's InterceptController computes it, or x = the tokens
    batched in the last iteration, InferCept's definition (T_swap(N) = T_fwd(batch)). The
    mechanism here always moves at most the latter per iteration; the former overstates it by
    contexts / batch (~50x at GPU scale), so the policy decides more swaps than can be hidden."""


class Simulator:
    def __init__(self, deployment: Deployment, requests: list[SimRequest], config: SimConfig,
                 on_step: Callable[[Simulator], None] | None = None):
        if config.policy not in POLICIES:
            raise ValueError(f"unknown policy {config.policy!r}; known: {', '.join(POLICIES)}")
        self.d = deployment
        self.cm = deployment.cost_model
        self.cfg = config
        self.decide = POLICIES[PolicyName(config.policy)]
        self.order = make_scheduler(config.scheduler, self.cm, **config.scheduler_options)
        self.preemptive = bool(getattr(self.order, "preemptive", False))
        self.pool = BlockPool(deployment.num_blocks, deployment.block_size)
        self.requeue_at_back = self.decide.requeue_at_back  # as engine_worker/main.py sets it
        self.lengths = OutputLengthHistory()
        self.reqs = [ReqState(r) for r in sorted(requests, key=lambda r: (r.arrival_s, r.request_id))]
        self._pending = list(self.reqs)  # not arrived yet, by arrival
        self._next_arrival = 0
        self._returns: list[tuple[float, int, ReqState]] = []  # (call end, seq, request) heap
        self.waiting: list[ReqState] = []
        self.running: list[ReqState] = []
        self.paused: list[ReqState] = []
        self.host_tokens = 0
        self.now = 0.0
        self._next_tick = 0.0
        self._pause_seen = False
        self.steps: list[StepStats] = []
        self.on_step = on_step
        self.preemptions = 0
        self._last_batched = 0

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> list[ReqState]:
        horizon = self.cfg.horizon_s
        while not self._all_done():
            if horizon is not None and self.now >= horizon:
                break
            self._arrivals()
            self._call_returns()
            if self._pause_seen or self.now >= self._next_tick:
                self._policy_tick()
            rank = self._reorder()
            if self.preemptive:
                self._hand_over_slots(rank)
            batch = self._schedule(rank)
            moved, budget = self._transfers(sum(batch.values()))
            if not batch and not moved:
                if not self.running and self._free_a_waiting_holder(rank):
                    continue
                self._idle_jump()
                continue
            self._finish_step(batch, moved, budget)
        return self.reqs

    def _all_done(self) -> bool:
        return self._next_arrival >= len(self._pending) and not (self.waiting or self.running or self.paused)

    # -- 1. arrivals and returns ---------------------------------------------------------------------
    def _arrivals(self) -> None:
        while (self._next_arrival < len(self._pending)
               and self._pending[self._next_arrival].req.arrival_s <= self.now + 1e-12):
            r = self._pending[self._next_arrival]
            self._next_arrival += 1
            r.queue_arrival_s = r.req.arrival_s
            r.enqueued_s = self.now
            self.waiting.append(r)

    def _call_returns(self) -> None:
        while self._returns and self._returns[0][0] <= self.now + 1e-12:
            _, _, r = heapq.heappop(self._returns)
            self.paused.remove(r)
            if r.kv == "out":  # back before its copy-out finished: it needs the KV now, keep it
                r.kv, r.swap_left = "device", 0
            seg = r.segment
            r.context += seg.return_tokens
            r.seg += 1
            r.seg_generated = 0
            r.calls_done += 1
            r.phase = "waiting"
            r.enqueued_s = self.now
            if self.requeue_at_back:
                r.queue_arrival_s = self.now
            self.waiting.append(r)

    # -- 2. handling policy --------------------------------------------------------------------------
    def _policy_tick(self) -> None:
        self._pause_seen = False
        self._next_tick = self.now + self.cfg.policy_interval_s
        candidates = [r for r in self.paused if r.kv == "device"]
        if not candidates:
            return
        running_ctx = sum(r.context for r in self.running)
        room = self._host_room()
        basis = running_ctx if self.cfg.swap_budget_basis == "running-context" else self._last_batched
        step_budget = self.cm.swap_budget_tokens(basis)
        batch = BatchState(running_context_tokens=running_ctx, swap_budget_tokens=min(room, step_budget),
                           free_blocks=self.pool.num_free,
                           reserve_blocks=min(self.d.max_num_seqs, self.pool.num_blocks // 2),
                           block_size=self.d.block_size, waiting_requests=len(self.waiting),
                           running_requests=len(self.running))
        cached_ok = self.pool.usage() < HIGH_KV_USAGE
        snaps = []
        for r in candidates:
            elapsed = self.now - r.call_started_s
            oracle = r.segment.duration_s
            expected = expected_duration(self.cfg.duration_mode, elapsed, None, oracle)
            full = r.context // self.d.block_size * self.d.block_size if cached_ok and self.d.prefix_caching else 0
            snaps.append(PausedRequest(r.id, r.context, expected, full, elapsed_s=elapsed,
                                       predicted_duration_s=oracle if self.cfg.duration_mode == "oracle" else None))
        by_id = {r.id: r for r in candidates}
        for decision in self.decide(snaps, batch, self.cm):
            r = by_id[decision.request_id]
            r.interceptions[-1].decision = decision
            if decision.strategy == Strategy.SWAP:
                if r.context > room or self.d.host_swap_tokens <= 0:
                    continue  # the host buffer cannot take it: stays preserved (as the controller)
                room -= r.context
                r.kv, r.swap_left = "out", r.computed  # the KV there is (the last sampled token has none yet)
                r.interceptions[-1].strategy = Strategy.SWAP
            elif decision.strategy == Strategy.DISCARD:
                self._release(r)
                r.kv = "gone"
                r.interceptions[-1].strategy = Strategy.DISCARD

    def _host_room(self) -> int:
        """Host buffer tokens not yet taken or promised to a copy out in progress. A copy out
        lands all of its `computed` tokens at once when it finishes (swap_left shrinks before
        that), so the promise is `computed`, not what is left to copy."""
        outs = [r for r in (*self.paused, *self.waiting) if r.kv == "out"]
        return max(0, self.d.host_swap_tokens - self.host_tokens - sum(r.computed for r in outs))

    # -- 3. queue order --------------------------------------------------------------------------------
    def _reorder(self) -> dict[str, int]:
        predicted: dict[str | None, int] = {}  # per API kind: the same answer for everyone this step
        snaps = [self._snapshot(r, "running", predicted) for r in self.running]
        snaps += [self._snapshot(r, "waiting", predicted) for r in self.waiting]
        snaps += [self._snapshot(r, "paused", predicted) for r in self.paused if r.kv in ("device", "out")]
        return ranks(self.order.order(snaps, self.now)) if snaps else {}

    def _snapshot(self, r: ReqState, state: RequestState, predicted: dict[str | None, int]) -> QueuedRequest:
        seg = r.req.segments[r.seg] if r.seg < len(r.req.segments) else None
        api = seg.api if seg is not None else None
        if api not in predicted:
            predicted[api] = self.lengths.predict(api)
        last = r.last_ran_s
        if state == "waiting" and r.enqueued_s is not None and (last is None or r.enqueued_s > last):
            last = r.enqueued_s
        key = (state, r.context, r.generated, r.attained_s, last, r.calls_done, predicted[api], r.queue_arrival_s)
        if r.snapshot_key == key:  # waiting and paused requests stay put for many iterations
            return r.snapshot  # type: ignore[return-value]  # set with its key
        r.snapshot_key = key
        r.snapshot = QueuedRequest(
            request_id=r.id, arrival_s=r.queue_arrival_s, state=state, context_tokens=r.context,
            generated_tokens=r.generated, program_id=r.req.program_id, attained_s=r.attained_s,
            last_scheduled_s=last, calls_done=r.calls_done, predicted_output_tokens=predicted[api],
            api_kind=api, predicted_call_s=seg.duration_s if api is not None else None)  # type: ignore[union-attr]
        return r.snapshot

    def _hand_over_slots(self, rank: dict[str, int]) -> None:
        ready = [(r.id, rank[r.id]) for r in self.waiting if r.kv != "in"]
        if not ready or not self.running:
            return
        free = self.d.max_num_seqs - self._slots_held()
        displaceable = {r.id: r for r in self.running
                        if self.order.preemptible(r.computed,  # type: ignore[attr-defined]  # a preemptive order's
                                                  self.now - (r.running_since_s or self.now))}
        for rid in time_slice_victims({rid: rank[rid] for rid in displaceable}, ready, max(0, free)):
            self._preempt(displaceable[rid], swap=self.d.preemption == "swap")

    # -- 4. scheduling ---------------------------------------------------------------------------------
    def _slots_held(self) -> int:
        return len(self.running) + sum(1 for r in self.paused if r.kv in ("device", "out")) \
            + sum(1 for r in self.waiting if r.kv == "in")

    def _schedule(self, rank: dict[str, int]) -> dict[str, int]:
        """Request id -> tokens this iteration. Chunked: running first, then admissions in the
        budget left. Not chunked (vLLM v0): an iteration of whole prefills when any is admitted,
        else of decodes."""
        budget = self.d.max_num_batched_tokens
        if not self.d.chunked_prefill:
            return self._admit(rank, budget, {}) or self._continue_running(rank, budget, {})
        batch = self._continue_running(rank, budget, {})
        return self._admit(rank, budget - sum(batch.values()), batch)

    def _chunk(self, r: ReqState, budget: int) -> int:
        need = r.context - r.computed
        if self.d.chunked_prefill:
            return min(need, budget)
        # Whole prefills; one longer than the budget runs alone (vLLM v0 sizes the budget to the
        # longest context, so there it never is).
        return need if need <= budget or budget == self.d.max_num_batched_tokens else 0

    def _continue_running(self, rank: dict[str, int], budget: int, batch: dict[str, int]) -> dict[str, int]:
        for r in sorted(self.running, key=lambda r: rank[r.id]):
            if r not in self.running:
                continue  # preempted for a better-ranked one in this loop
            chunk = self._chunk(r, budget)
            if chunk <= 0 or not self._grow(r, r.computed + chunk, rank):
                continue
            batch[r.id] = chunk
            budget -= chunk
        return batch

    def _admit(self, rank: dict[str, int], budget: int, batch: dict[str, int]) -> dict[str, int]:
        for r in sorted(self.waiting, key=lambda r: rank[r.id]):
            if r.kv == "in":
                continue  # loading its KV: runs once the copy is done
            if self._slots_held() >= self.d.max_num_seqs or budget <= 0:
                break
            if r.kv == "out":  # preempted to host, its turn again before the copy finished: keep the KV
                r.kv, r.swap_left = "device", 0
            if r.kv == "host":
                need_blocks = self.pool.blocks_for(r.context)
                if not self.pool.can_allocate(need_blocks):
                    break
                r.blocks = self.pool.allocate(need_blocks)
                r.kv, r.swap_left = "in", r.swapped_tokens
                continue
            if r.kv != "device":
                self._prefix_hit(r)
            chunk = self._chunk(r, budget)
            if chunk <= 0 or not self._allocate_making_room(r, r.computed + chunk, rank):
                break
            self.waiting.remove(r)
            self.running.append(r)
            r.phase, r.running_since_s = "running", self.now
            batch[r.id] = chunk
            budget -= chunk
        return batch

    def _allocate_making_room(self, r: ReqState, tokens: int, rank: dict[str, int]) -> bool:
        """Admission: resumed requests parked in the queue with their KV give it up (recompute),
        lowest-ranked first, to a better-ranked request that cannot otherwise get blocks."""
        while not self._allocate_to(r, tokens):
            holders = [x for x in self.waiting
                       if x is not r and x.kv == "device" and x.blocks and rank[x.id] > rank[r.id]]
            if not holders:
                return False
            victim = max(holders, key=lambda x: rank[x.id])
            self.preemptions += 1
            self._release(victim)
            victim.kv = "gone"
        return True

    def _free_a_waiting_holder(self, rank: dict[str, int]) -> bool:
        """Nothing runs and admission is stuck: a waiting request that holds blocks (resumed with
        its KV preserved) may be what the head of the queue needs. vLLM would preempt a running
        request here; with none running, the lowest-ranked holder gives its blocks up (recompute)."""
        holders = [r for r in self.waiting if r.kv == "device" and r.blocks]
        head = min((r for r in self.waiting if r.kv != "in"), key=lambda r: rank[r.id], default=None)
        if not holders or head is None or head in holders and len(holders) == 1:
            return False
        victim = max((r for r in holders if r is not head), key=lambda r: rank[r.id])
        self.preemptions += 1
        self._release(victim)
        victim.kv = "gone"
        return True

    def _prefix_hit(self, r: ReqState) -> None:
        """A request with no KV on device starts from the cached full blocks of its context."""
        if r.blocks:
            raise AssertionError(f"{r.id} would leak {len(r.blocks)} blocks (kv {r.kv})")
        hit = self.pool.cached_prefix(r.id, r.context - 1) if self.d.prefix_caching else 0
        r.blocks = self.pool.take_cached(r.id, hit)
        r.computed = hit * self.d.block_size
        r.kv = "device"
        recompute = r.context - r.computed
        if r.interceptions and r.interceptions[-1].resumed_s is None:
            r.interceptions[-1].recomputed_tokens += max(0, r.context_at_pause - r.computed)
        elif r.generated > 0:
            r.preempt_recomputed += recompute

    def _allocate_to(self, r: ReqState, tokens: int) -> bool:
        extra = self.pool.blocks_for(tokens) - len(r.blocks)
        if extra <= 0:
            return True
        if not self.pool.can_allocate(extra):
            return False
        r.blocks += self.pool.allocate(extra)
        return True

    def _grow(self, r: ReqState, tokens: int, rank: dict[str, int]) -> bool:
        """Blocks for a running request. When the pool is full the lowest-ranked holder gives its
        blocks up (recompute): a running request, or a resumed one still waiting with its KV
        preserved (else the head of the queue could thrash against blocks parked behind it)."""
        while not self._allocate_to(r, tokens):
            holders = [x for x in self.waiting if x.kv == "device" and x.blocks]
            victim = max([*self.running, *holders], key=lambda x: rank[x.id])
            if victim in self.running:
                self._preempt(victim)
            else:
                self.preemptions += 1
                self._release(victim)
                victim.kv = "gone"
            if victim is r:
                return False
        return True

    def _preempt(self, r: ReqState, swap: bool = False) -> None:
        """Back to the waiting queue. `swap` (Deployment.preemption): its KV is copied out to the
        host buffer if that has room (the blocks are freed when the copy is done), else freed."""
        self.preemptions += 1
        self.running.remove(r)
        if swap and 0 < r.computed <= self._host_room():
            r.kv, r.swap_left = "out", r.computed
        else:
            self._release(r)
            r.kv = "gone"
        r.phase = "waiting"
        r.enqueued_s, r.running_since_s = self.now, None
        self.waiting.append(r)

    def _release(self, r: ReqState) -> None:
        self._seal(r)
        self.pool.free(r.blocks)
        r.blocks = []
        r.computed = 0

    def _seal(self, r: ReqState) -> None:
        for index in range(min(len(r.blocks), r.computed // self.d.block_size)):
            self.pool.seal(r.blocks[index], (r.id, index))

    # -- swap transfers --------------------------------------------------------------------------------
    def _transfers(self, batched_tokens: int) -> tuple[int, int]:
        """Copies this iteration: outs first (they free memory), then ins, oldest first, within
        what the forward pass hides; with no forward pass, one budget of S tokens' time."""
        movers = [r for r in (*self.paused, *self.waiting) if r.kv == "out"] + [r for r in self.waiting if r.kv == "in"]
        if not movers:
            return 0, 0
        budget = self.cm.swap_budget_tokens(batched_tokens or self.cm.saturation_tokens)
        left = budget
        moved = 0
        for r in movers:
            take = min(left, r.swap_left)
            r.swap_left -= take
            left -= take
            moved += take
            if r.swap_left == 0:
                if r.kv == "out":
                    r.swapped_tokens = r.computed
                    self.host_tokens += r.computed
                    self._seal(r)
                    self.pool.free(r.blocks)
                    r.blocks, r.computed, r.kv = [], 0, "host"
                else:
                    self.host_tokens -= r.swapped_tokens
                    r.computed, r.swapped_tokens, r.kv = r.swapped_tokens, 0, "device"
            if left <= 0:
                break
        return moved, budget

    # -- 5. the step -----------------------------------------------------------------------------------
    def _finish_step(self, batch: dict[str, int], moved: int, budget: int) -> None:
        tokens = sum(batch.values())
        self._last_batched = tokens
        by_id = {r.id: r for r in self.running}
        attended = sum(by_id[rid].computed + chunk for rid, chunk in batch.items())
        dt = (self.cm.fwd_s(tokens) + self.d.step_overhead_s + self.d.seq_overhead_s * len(batch)
              + self.d.kv_read_s_per_token * attended if tokens else self.cm.swap_s(moved))
        start = self.now
        self.now += dt
        for rid, chunk in batch.items():
            r = by_id[rid]
            r.computed += chunk
            r.attained_s += dt * chunk / tokens
            r.last_ran_s = self.now
            if r.interceptions and r.interceptions[-1].resumed_s is None and r.calls_done == len(r.interceptions):
                r.interceptions[-1].resumed_s = start
            if r.computed >= r.context:
                self._sample(r)
        if self.cfg.record_steps:
            self.steps.append(StepStats(start, dt, tokens, len(batch), len(self.running), self._slots_held(), moved,
                                        budget, self.pool.num_free, self.host_tokens))
        self.order.observe({rid: dt * n / tokens for rid, n in batch.items()} if tokens else {}, self.now)
        if self.on_step is not None:
            self.on_step(self)

    def _sample(self, r: ReqState) -> None:
        r.context += 1
        r.generated += 1
        r.seg_generated += 1
        if r.first_token_s is None:
            r.first_token_s = self.now
        seg = r.segment
        if r.seg_generated < seg.generate_tokens:
            return
        self.lengths.record(seg.api, r.seg_generated)
        self.running.remove(r)
        r.running_since_s = None
        if seg.api is None:
            self._release(r)
            r.kv, r.phase, r.end_s = "gone", "done", self.now
            return
        r.phase, r.call_started_s, r.context_at_pause = "paused", self.now, r.context
        returns_at = self.now + seg.duration_s + self.d.call_overhead_s
        r.interceptions.append(Interception(seg.api, self.now, returns_at, seg.duration_s, r.context,
                                            seg.return_tokens))
        self.paused.append(r)
        heapq.heappush(self._returns, (returns_at, r.order_key, r))
        self._pause_seen = True

    def _idle_jump(self) -> None:
        times = []
        if self._next_arrival < len(self._pending):
            times.append(self._pending[self._next_arrival].req.arrival_s)
        if self._returns:
            times.append(self._returns[0][0])
        if any(r.kv == "device" for r in self.paused) and (self.waiting or self.running):
            times.append(self._next_tick)
        if not times:
            if self.waiting:  # nothing can ever admit it: the pool is too small for its context
                raise RuntimeError(f"request {self.waiting[0].id} can never be admitted "
                                   f"({self.waiting[0].context} tokens, {self.pool.num_blocks} blocks): waiting "
                                   f"{[(r.kv, r.context - r.computed, len(r.blocks)) for r in self.waiting][:8]}, "
                                   f"free blocks {self.pool.num_free}, slots {self._slots_held()}, "
                                   f"paused {len(self.paused)}")
            return
        self.now = max(self.now, min(times))
