"""What counts as RECOMPUTED when a paused request resumes: one definition for our worker and
the benchmark's client-side tool loop (stock vLLM), so both are counted alike.

A resumed request must compute, whatever happened to its KV while paused, the call's returned
tokens and the last token it generated before the call (a stopped vLLM request never computed
that token's KV). Only what it computes beyond those is recomputation: context tokens it had
already computed once and that neither the prefix cache nor a swap-in gave back.
"""

from __future__ import annotations


def fresh_tokens(returned_tokens: int) -> int:
    """Tokens every resume computes: the returned ones and the last generated one."""
    return returned_tokens + 1


def recomputed_tokens(prompt_tokens: int, cached_tokens: int, returned_tokens: int) -> int:
    """Of a resumed request's `prompt_tokens` (the whole context re-submitted) of which
    `cached_tokens` were served from cache, those computed again."""
    return max(0, prompt_tokens - cached_tokens - fresh_tokens(returned_tokens))
