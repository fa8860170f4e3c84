"""Predicted output length before a request's next API call, from the history of each API kind.

LAMPS predicts the pre-call output length with a fine-tuned OPT-125M over the prompt; here a
cheaper stand-in: the median of the last `window` lengths recorded for the same API kind, falling
back to the median over all kinds, then to a stated default. The median, not the mean: lengths are
heavy-tailed and the mean is dragged by a few long answers. `predict_remaining` conditions on what
a request already generated (median of the recorded lengths above it, minus it), so a long-running
request's estimate grows instead of going negative (past everything recorded: half of what it
has generated so far).

`python -m engine_worker.policies.output_length [--trace PATH]` replays the InferCept trace online
(predict, then record, in file order) and prints the error per kind.
"""

from __future__ import annotations

import argparse
import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_TOKENS = 64
"""Used before any history exists: the InferCept trace's median pre-call length."""
WINDOW = 1000
"""Recent lengths kept per kind: enough for a stable median, short enough to follow drift."""
ALL_KINDS = "*"


class OutputLengthHistory:
    def __init__(self, window: int = WINDOW, default_tokens: int = DEFAULT_TOKENS):
        if window < 1 or default_tokens < 0:
            raise ValueError("window must be positive, default_tokens non-negative")
        self.window = window
        self.default_tokens = default_tokens
        self._recent: dict[str, deque[int]] = {}
        self._sorted: dict[str, list[int]] = {}
        """The same samples kept sorted, for medians and conditional medians in O(log n)."""

    def record(self, api_kind: str | None, tokens: int) -> None:
        """A request generated `tokens` tokens before calling `api_kind` (None: before finishing)."""
        for key in dict.fromkeys((_key(api_kind), ALL_KINDS)):
            recent = self._recent.setdefault(key, deque())
            ordered = self._sorted.setdefault(key, [])
            if len(recent) == self.window:
                ordered.pop(bisect.bisect_left(ordered, recent.popleft()))
            recent.append(tokens)
            bisect.insort(ordered, tokens)

    def samples(self, api_kind: str | None) -> int:
        return len(self._sorted.get(_key(api_kind), ()))

    def predict(self, api_kind: str | None) -> int:
        return self.predict_remaining(api_kind, 0)

    def predict_remaining(self, api_kind: str | None, generated: int) -> int:
        """Median of the recorded lengths longer than `generated`, minus `generated` (so at least 1
        once it has generated anything); with `generated` 0, the plain median."""
        for key in (_key(api_kind), ALL_KINDS):
            ordered = self._sorted.get(key)
            if ordered:
                start = bisect.bisect_right(ordered, generated) if generated > 0 else 0
                if start < len(ordered):
                    return _median(ordered[start:]) - generated
        if generated == 0:
            return self.default_tokens  # no history at all
        if ALL_KINDS not in self._sorted and generated < self.default_tokens:
            return self.default_tokens - generated
        # Longer than anything recorded: with heavy tails, the longer it ran the longer it runs.
        return max(1, generated // 2)


def _key(api_kind: str | None) -> str:
    return "none" if api_kind is None else api_kind


def _median(ordered: list[int]) -> int:
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid] + 1) // 2


@dataclass(frozen=True)
class PredictionError:
    kind: str
    samples: int
    mae_tokens: float
    mean_actual_tokens: float
    relative_mae: float
    """MAE / mean actual length (robust to tiny actual lengths)."""
    mean_relative_error: float
    """Mean of |predicted - actual| / max(1, actual): dominated by the few 1-3 token answers."""


def evaluate(samples: Iterable[tuple[str | None, int]],
             history: OutputLengthHistory | None = None) -> list[PredictionError]:
    """Online error: each (api_kind, actual length) is predicted from the samples before it, then
    recorded. One row per kind, then an overall row (kind '*')."""
    history = history or OutputLengthHistory()
    errors: dict[str, list[tuple[int, int]]] = {}
    for kind, actual in samples:
        predicted = history.predict(kind)
        for key in dict.fromkeys((_key(kind), ALL_KINDS)):
            errors.setdefault(key, []).append((predicted, actual))
        history.record(kind, actual)
    rows = []
    for key in sorted(errors, key=lambda k: (k == ALL_KINDS, k)):
        pairs = errors[key]
        abs_err = [abs(p - a) for p, a in pairs]
        mean_actual = sum(a for _, a in pairs) / len(pairs)
        rows.append(PredictionError(
            key, len(pairs), sum(abs_err) / len(pairs), mean_actual,
            sum(abs_err) / len(pairs) / mean_actual if mean_actual else float("inf"),
            sum(e / max(1, a) for e, (_, a) in zip(abs_err, pairs)) / len(pairs)))
    return rows


def trace_samples(path: str | None = None) -> list[tuple[str | None, int]]:
    """(kind of the call ending the segment, its generated tokens) for every segment of the InferCept
    trace that ends in a call, in file order. Imported here only: the policies never read files."""
    from bench.trace import DEFAULT_TRACE, call_kind, load_trace

    out: list[tuple[str | None, int]] = []
    for request in load_trace(path or DEFAULT_TRACE):
        for i, segment in enumerate(request.segments):
            if segment.api_time_s is not None:
                out.append((call_kind(request.type, i), segment.completion_tokens))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine_worker.policies.output_length",
                                     description="Error of the per-kind output-length predictor on a trace.")
    parser.add_argument("--trace", help="trace file (default: bench/data/infercept_mixture.json)")
    parser.add_argument("--window", type=int, default=WINDOW)
    args = parser.parse_args(argv)
    samples = trace_samples(args.trace)
    print("Online replay, file order: each length predicted from the history before it, then recorded.")
    for label, keyed in (("per-kind median", samples), ("global median only", [("any", n) for _, n in samples])):
        print(f"\n{label}:")
        print(f"{'kind':<12}{'samples':>8}{'MAE tok':>10}{'mean tok':>10}{'MAE/mean':>10}{'mean |e|/a':>12}")
        for row in evaluate(keyed, OutputLengthHistory(window=args.window)):
            if keyed is samples or row.kind == ALL_KINDS:
                print(f"{row.kind:<12}{row.samples:>8}{row.mae_tokens:>10.1f}{row.mean_actual_tokens:>10.1f}"
                      f"{row.relative_mae:>10.2f}{row.mean_relative_error:>12.2f}")

if __name__ == "__main__":
    main()
