"""SWAP: a paused request's KV blocks move to a bounded host buffer and come back on resume.

Built on vLLM's KV connector API, so the same code runs wherever the engine does: on a GPU the
copies cross PCIe, on a CPU the "device" is vLLM's bounded KV pool and a copy is a memcpy; what a
swap frees is room in that pool either way.

- marks.py: which aborted request the engine worker asked to swap out (its end: ../../swap_channel.py).
- transfers.py: which block copies run in a step, within the per-step swap budget (pure).
- host_store.py: the bounded host buffer and the block copies (worker side of the connector).
- connector.py: the connector that vLLM loads, tying the three to the scheduler and model runner.
"""
