"""Engine: vLLM's own metrics per worker (scheduler, tokens, prefix cache, preemptions, token latency).

vLLM's finished-request metrics (request_success, e2e/queue/prefill/decode time) stay at zero here:
the worker runs every request as a streaming-input session, and vLLM 0.32 records no finished-request
stats when such a session closes. Those panels are left out (docs/dashboards.md, "Planned").

vLLM's series carry `model_name` and `engine` labels only; `worker` is the Prometheus target label
that deploy/prometheus/prometheus.yml sets on each engine worker target.
"""

from __future__ import annotations

from dashboards.panels import POLICY_VARIABLE, RATE, WORKER_VARIABLE, Dashboard, Panel, Row, q, quantiles

W = 'worker=~"$worker"'


def build() -> Dashboard:
    scheduler = Row("Scheduler", (
        Panel("Running and waiting requests", "Requests in vLLM's running batch and its waiting queue (paused "
              "requests are neither: they wait for their API call outside the scheduler).",
              (q(f"sum by (worker) (vllm:num_requests_running{{{W}}})", "running {{worker}}"),
               q(f"sum by (worker) (vllm:num_requests_waiting{{{W}}})", "waiting {{worker}}"))),
        Panel("Tokens per engine step", "Batch size in tokens of each engine step (prefill and decode), p50/p90.",
              quantiles("vllm:iteration_tokens_total", "", W, (0.5, 0.9))),
        Panel("Prompt and generation tokens", "Tokens prefilled and generated per second. Prefill includes the "
              "tokens appended when a paused request resumes.",
              (q(f"sum by (worker) (rate(vllm:prompt_tokens_total{{{W}}}[{RATE}]))", "prefill {{worker}}"),
               q(f"sum by (worker) (rate(vllm:generation_tokens_total{{{W}}}[{RATE}]))", "generation {{worker}}")),
              unit="suffix:tok/s"),
        Panel("Preemptions", "Requests preempted per second (vLLM V1 preempts by recompute, never swaps).",
              (q(f"sum by (worker) (rate(vllm:num_preemptions_total{{{W}}}[{RATE}]))", "{{worker}}"),),
              unit="ops"),
    ))
    cache = Row("KV cache", (
        Panel("KV cache usage", "Share of the KV pool in use per worker.",
              (q(f"max by (worker) (vllm:kv_cache_usage_perc{{{W}}})", "{{worker}}"),), unit="percentunit"),
        Panel("Prefix cache hit rate", "Prompt tokens served from the prefix cache over prompt tokens looked up.",
              (q(f"sum by (worker) (rate(vllm:prefix_cache_hits_total{{{W}}}[{RATE}])) "
                 f"/ sum by (worker) (rate(vllm:prefix_cache_queries_total{{{W}}}[{RATE}]))", "{{worker}}"),),
              unit="percentunit"),
        Panel("Cached prompt tokens", "Prompt tokens per second that needed no prefill (prefix cache hits).",
              (q(f"sum by (worker) (rate(vllm:prompt_tokens_cached_total{{{W}}}[{RATE}]))", "{{worker}}"),),
              unit="suffix:tok/s"),
    ))
    latency = Row("Token latency (vLLM)", (
        Panel("Time to first token (engine)", "vLLM's own TTFT per segment, from arrival at the engine: p50/p90/p99.",
              quantiles("vllm:time_to_first_token_seconds", "", W), unit="s"),
        Panel("Inter-token latency", "Time between consecutive output tokens: p50/p90/p99.",
              quantiles("vllm:inter_token_latency_seconds", "", W), unit="s"),
        Panel("Waiting requests by reason", "vLLM's waiting queue split by why: capacity (no room in the batch or "
              "the KV pool) or deferred (transient constraints).",
              (q(f"sum by (worker, reason) (vllm:num_requests_waiting_by_reason{{{W}}})", "{{worker}} {{reason}}"),)),
    ))
    return Dashboard(
        uid="augserve-engine", title="augserve / Engine (vLLM)",
        description="vLLM scheduler, tokens, prefix cache, preemptions and token latency per engine worker.",
        rows=(scheduler, cache, latency),
        variables=(POLICY_VARIABLE, WORKER_VARIABLE),
    )
