"""The API executor: a Celery app (Redis broker) running one task per API kind.

Callers send tasks by name (common.names.task_name) with ToolCallTask kwargs and read ToolResults
off their reply stream; they never import this package. Tasks are thin (tasks.py); each kind's logic
is a plain function in kinds/.
"""
