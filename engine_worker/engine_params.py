"""Keys of our facts in a vLLM request's sampling params, written by the session (session.py)
and read by our plugins in the engine-core process (engine_core/kv_swap/connector.py, engine_core/queue_scheduler.py).
Kept free of vLLM imports so the worker's main process can import it before vLLM."""

SWAP_ID = "augserve_swap_id"
"""kv_transfer_params: the id the worker submitted this request under (vLLM adds a suffix to it
inside the engine) and marks it by; when the request is aborted, the connector checks the mark."""
SWAP_KEY = "augserve_swap_key"
"""kv_transfer_params of a resumed request: the record (the aborted request's SWAP_ID) to load."""
REQUEST_INFO = "augserve"
"""extra_args: the request's scheduling facts (common.schemas.SchedulingFacts, as a dict: id
across resubmissions, ORIGINAL arrival, program, calls done, next call's kind and duration,
expected segment length)."""
