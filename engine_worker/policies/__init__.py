"""Pure intercept policies: waste equations and per-paused-request handling choices.

No vLLM, Redis, clock or tensors in here: functions over frozen snapshots with `now` passed in,
returning frozen decisions. The engine mechanism applies them; a simulator can replay them.
"""
