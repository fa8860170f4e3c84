"""Our wire types <-> vLLM's: structured-output constraints in, sampled-token logprobs out.

vLLM is imported inside the functions: the worker's main process imports this module before vLLM.
"""

from __future__ import annotations

from typing import Any

from common.schemas import TokenLogprob, TopLogprob


def structured_params(*, json_schema: dict[str, Any] | None = None, json_object: bool | None = None,
                      regex: str | None = None, choice: list[str] | None = None, grammar: str | None = None,
                      compact: bool = False):
    """vLLM's StructuredOutputsParams for one constraint (common.schemas.StructuredOutput's fields)."""
    from vllm.sampling_params import StructuredOutputsParams

    return StructuredOutputsParams(json=json_schema, json_object=json_object, regex=regex, choice=choice,
                                   grammar=grammar, disable_any_whitespace=compact)


def logprobs_of(completion, top_k: int | None) -> list[TokenLogprob] | None:
    """One TokenLogprob per new token of a vLLM CompletionOutput (DELTA kind: its logprobs are
    the new tokens' only), or None when the request asked for none (`top_k` None). Each
    position's dict holds the top-k tokens by rank plus the sampled one, which may rank below k."""
    if completion.logprobs is None or top_k is None:
        return None
    out = []
    for token_id, position in zip(completion.token_ids, completion.logprobs):
        chosen = position[token_id]
        ranked = sorted(position.values(), key=lambda lp: lp.rank if lp.rank is not None else 1 << 30)
        out.append(TokenLogprob(
            token=chosen.decoded_token or "", logprob=_finite(chosen.logprob),
            top_logprobs=[TopLogprob(token=lp.decoded_token or "", logprob=_finite(lp.logprob))
                          for lp in ranked[:top_k]]))
    return out


def _finite(logprob: float) -> float:
    """JSON has no -inf: a token the constraint ruled out gets the lowest float instead (as vLLM's server does)."""
    return max(logprob, -9999.0)
