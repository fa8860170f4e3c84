"""Stop strings, matched on the text the client sees, across token and segment boundaries.

vLLM refuses stop strings in resumable sessions, so the worker matches them itself, on the
visible text of the whole request (every segment's share, in order): a stop string may start
before a paused call and end after it. Pure: no vLLM, no tokenizer.

Streaming holds back what may be the start of a stop string until the next text tells (as vLLM
does; here only the longest tail that really is a prefix of some stop string, so text that
cannot start one is shown at once). With `include_stop_str_in_output` nothing is held back:
a match is shown whole anyway.
"""

from __future__ import annotations


class StopScan:
    """Invariant: `release` never returns less than it returned before for a longer text, so
    what was streamed is always a prefix of the final text."""

    def __init__(self, stops: list[str], include_in_output: bool = False) -> None:
        self._stops = [s for s in stops if s]
        self._include = include_in_output
        self._longest = max((len(s) for s in self._stops), default=0)
        self._checked = 0
        """Length of the text already searched: a new match must end past it."""
        self.end: int | None = None
        """Where the final text ends, once a stop string matched (None: none matched yet)."""

    @property
    def active(self) -> bool:
        return bool(self._stops)

    def release(self, text: str) -> int:
        """How much of `text` (the visible text so far, growing) the client may see now; sets
        `end` at the first match, after which the answer never changes."""
        if self.end is not None:
            return self.end
        if not self._stops:
            return len(text)
        start = max(0, self._checked - self._longest + 1)
        found = [(at, stop) for stop in self._stops if (at := text.find(stop, start)) >= 0]
        self._checked = len(text)
        if found:
            at, stop = min(found, key=lambda f: (f[0], -len(f[1])))
            self.end = at + len(stop) if self._include else at
            return self.end
        if self._include:
            return len(text)
        return len(text) - self._partial_tail(text)

    def _partial_tail(self, text: str) -> int:
        """Length of the longest tail of `text` that a stop string starts with."""
        for n in range(min(self._longest - 1, len(text)), 0, -1):
            tail = text[-n:]
            if any(stop.startswith(tail) for stop in self._stops):
                return n
        return 0

    def final(self, text: str) -> str:
        """The request's final text: cut at the match (its stop string kept if asked)."""
        self.release(text)
        return text if self.end is None else text[: self.end]
