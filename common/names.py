"""Names that two services must agree on: Redis keys and streams, Celery task names and queues."""

PREFIX = "augserve"

# gateway -> engine workers: one shared durable stream, one consumer group; a worker pulls a
# request when it has room, so load balances by pull. Pending entries of a dead worker are
# re-claimable. Each worker also reads its own stream (engine_worker_stream) in the same group.
ENGINE_REQUEST_STREAM = f"{PREFIX}:engine:requests"
ENGINE_GROUP = "engine-workers"

# Registry of worker ids that own a request stream (engine_worker_stream), so a live worker can
# find the stream of a dead or stopped one and adopt its entries (pending and never delivered).
WORKER_STREAMS_SET = f"{PREFIX}:engine:worker-streams"


def engine_worker_stream(worker_id: str) -> str:
    """One worker's own request stream (same consumer group): where program-affinity routing puts
    a request for the worker that holds its program's KV/prefix. The worker reads it before the
    shared stream."""
    return f"{ENGINE_REQUEST_STREAM}:{worker_id}"


def program_holder(program_id: str) -> str:
    """String key: the worker that last started a request of this program (expires, see
    WorkerSettings.program_affinity_ttl_s)."""
    return f"{PREFIX}:program:{program_id}"

# engine worker registry: hash worker_id -> common.schemas.WorkerStatus JSON, refreshed as a heartbeat.
WORKERS_HASH = f"{PREFIX}:workers"

# Output events of one request, engine worker -> gateway. Expires after the request ends.
OUTPUT_STREAM_TTL_S = 600


def output_stream(request_id: str) -> str:
    return f"{PREFIX}:out:{request_id}"


def cancelled_request(request_id: str) -> str:
    """Set by the gateway when a request's client went away (disconnected, timed out): the engine
    worker serving it aborts it instead of generating for no one. Expires with OUTPUT_STREAM_TTL_S."""
    return f"{PREFIX}:cancelled:{request_id}"


def tool_result_stream(worker_id: str) -> str:
    """Results of the API calls a worker dispatched come back here, never via a Celery backend."""
    return f"{PREFIX}:tool-results:{worker_id}"


def kv_swap_marks(worker_id: str) -> str:
    """Set of a worker's vLLM request ids whose KV goes to the host buffer when aborted."""
    return f"{PREFIX}:kvswap:{worker_id}"


def kv_swap_stats(vllm_request_id: str) -> str:
    """Hash of one swap's copy times (out_s, in_s), written by the connector's worker side."""
    return f"{PREFIX}:kvswap:stats:{vllm_request_id}"


KV_SWAP_STATS_TTL_S = 600


def duration_history(api: str) -> str:
    """Estimator: recent call durations of one API kind (a capped list)."""
    return f"{PREFIX}:estimator:durations:{api}"


CELERY_QUEUE = "api"


def task_name(api: str) -> str:
    """Celery task name of an API kind: callers send by name, never import the executor."""
    return f"api.{api}"


DELIVER_TASK = "api.deliver"
"""The executor's own task that ends a stand-in's wait (kwargs: common.schemas.StandInDelivery)."""
