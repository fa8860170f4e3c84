"""API duration estimator: durations recorded in Redis, statistics served to the engine.

store.py does the Redis I/O, stats.py the arithmetic (pure), client.py the engine's cached view,
service.py the HTTP face (`python -m estimator`).
"""
