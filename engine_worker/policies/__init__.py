"""Pure intercept policies: waste equations, per-paused-request handling choices, queue orders.

No vLLM, Redis, clock or tensors in here: functions over frozen snapshots with `now` passed in,
returning frozen decisions. The engine mechanism applies them; a simulator can replay them.

Handling (what a paused request's KV gets): handling.POLICIES (the registry), one module a policy
(infercept.py, fixed.py, continuum.py, fastserve_offload.py) over handling_types.py's snapshots,
built on waste.py and cost_model.py.
Queue order (who runs first, and so who is preempted last): schedulers.SCHEDULERS, each a
queue_order.QueueOrder over queue_order.QueuedRequest snapshots, one module an order (fcfs.py,
fastserve.py, lamps.py, program_fcfs.py, autellix.py); kv_offload.py plans proactive offload/upload
from such an order, and the `fastserve` handling policy (fastserve_offload.py) applies its offload
part to paused requests.
"""
