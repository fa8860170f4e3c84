"""The load client for stock vLLM: the same requests at the same times as LoadClient sends our
gateway, but each one driven through the client-side tool loop (bench.tool_loop) against vLLM's
own `/v1/completions`.

A RequestRecord comes out shaped like our system's, so bench.metrics treats both alike:
- arrival, first token (first generated token of the first segment), end (last segment's end);
- one interception record per call: its `duration_s` is the time from the segment's response end
  to the re-submission (the call ran in between), so normalized latency subtracts API time
  exactly as for our systems; `recomputed_tokens` / `recompute_s` describe the re-submission;
- `prompt_tokens` = the first prompt + every returned token (our usage's definition),
  `completion_tokens` = every generated token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from bench.client import LoadClient, RequestRecord, error_text
from bench.client_calls import run_call
from bench.prompts import PromptBuilder
from bench.tool_loop import (
    SegmentResult,
    check_segment,
    interception_record,
    note_resubmit,
    read_payload,
    resumed_context,
    segment_request,
)
from bench.workload import BenchRequest
from engine_worker.tokens import TokenCodec


class StockClient(LoadClient):
    def __init__(self, base_url: str, model: str, prompts: PromptBuilder, codec: TokenCodec, *, seed: int,
                 stream: bool = True, timeout_s: float = 900.0, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, model, prompts, seed=seed, stream=stream, timeout_s=timeout_s, transport=transport)
        self.url = f"{base_url}/v1/completions"
        self.codec = codec
        """Pads or cuts a call's result to its return_tokens, as our worker does."""

    def body(self, request: BenchRequest) -> dict[str, Any]:
        """Not one HTTP body but what the loop starts from: the prompt's token ids and the plan."""
        return {"prompt_token_ids": self.prompts.token_ids(self.prompt_text(request)), "plan": request.plan}

    async def _exchange(self, client: httpx.AsyncClient, body: dict, rec: RequestRecord,
                        clock: Callable[[], float]) -> None:
        context = list(body["prompt_token_ids"])
        rec.prompt_tokens, rec.completion_tokens = len(context), 0
        episodes: dict[str, dict] = {}  # ve episode states of this request
        segments = body["plan"]["segments"]
        try:
            for i, segment in enumerate(segments):
                submitted = clock()
                result = await self._segment(client, segment_request(self.model, context, segment["generate_tokens"],
                                                                     stream=self.stream), clock)
                rec.status = result.status
                if i == 0:
                    rec.first_token_s = result.first_token_s
                else:
                    note_resubmit(rec.interceptions[-1], result, submitted)
                if (problem := check_segment(result, segment["generate_tokens"])) is not None:
                    rec.error = problem
                    return
                rec.completion_tokens += len(result.token_ids)
                rec.finish_reason = result.finish_reason
                if "api" not in segment:
                    return
                began = clock()
                text = await run_call(segment, episodes)
                ran = clock() - began
                returned = self.codec.exact_length(text, segment.get("return_tokens"))
                rec.interceptions.append(interception_record(
                    segment, duration_s=clock() - began, api_s=ran, context_tokens=len(context) + len(result.token_ids),
                    returned_tokens=len(returned), ok=not text.startswith("error:"), error=None))
                rec.prompt_tokens += len(returned)
                context = resumed_context(context, result.token_ids, returned)
        except httpx.HTTPError as exc:
            rec.error = f"{type(exc).__name__}: {exc}"

    async def _segment(self, client: httpx.AsyncClient, body: dict, clock: Callable[[], float]) -> SegmentResult:
        result = SegmentResult()
        if not self.stream:
            response = await client.post(self.url, json=body)
            result.status = response.status_code
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}: {error_text(response.content)}"
            else:
                read_payload(response.json(), result, clock())
            return result
        async with client.stream("POST", self.url, json=body) as response:
            result.status = response.status_code
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}: {error_text(await response.aread())}"
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line[6:] == "[DONE]":
                    break
                read_payload(json.loads(line[6:]), result, clock())
        return result
