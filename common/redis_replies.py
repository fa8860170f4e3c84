"""The shapes of the Redis replies read here, for the type checker only: redis-py 8 types a reply
as the union of its RESP2 and RESP3 forms, and every client here speaks RESP2 (redis-py's default).
Ids, names, fields and values are bytes, or str on a client made with decode_responses=True (the
gateway's)."""

from __future__ import annotations

from typing import Any, TypeAlias

Fields: TypeAlias = dict[Any, Any]
"""One stream entry's fields."""
StreamEntries: TypeAlias = list[tuple[Any, Fields]]
"""XRANGE: (entry id, fields), in order."""
ClaimedEntries: TypeAlias = list[tuple[Any, Fields | None]]
"""XCLAIM: as XRANGE, with None fields for an entry deleted meanwhile."""
StreamsReply: TypeAlias = list[tuple[Any, list[tuple[Any, Any]]]] | None
"""XREAD, XREADGROUP: (stream, its entries as (id, fields)) per stream; None when the block timed
out. Read from id 0 (a consumer's pending entries), an entry deleted meanwhile has None fields."""
