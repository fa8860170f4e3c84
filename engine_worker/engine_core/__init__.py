"""vLLM plugins: these modules run inside vLLM's engine-core process, not the worker's.

vLLM loads them by class path (engine_worker/engine.py passes `scheduler_cls` and the KV
connector's module path as strings), so a move here must update those strings too.

- queue_scheduler.py: the scheduler subclass that orders vLLM's queues by a queue-order policy.
- kv_swap/: the KV connector that swaps paused requests' KV to host memory and back (its marks.py
  and channel.py are also imported by the worker process, which tells the core what to swap).
"""
