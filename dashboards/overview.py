"""Overview: traffic, errors, latency and KV usage of the whole stack on one page."""

from __future__ import annotations

from dashboards.panels import POLICY_VARIABLE, RATE, WORKER_VARIABLE, Dashboard, Panel, Row, q, quantiles

GENERATION = 'route=~"/v1/(chat/)?completions"'
WORKER = 'worker=~"$worker"'


def build() -> Dashboard:
    traffic = Row("Traffic", (
        Panel("Request rate by route", "HTTP requests per second at the gateway, by matched route "
              "(augserve_gateway_requests_total).",
              (q(f'sum by (route) (rate(augserve_gateway_requests_total{{route=~"/v1/.*"}}[{RATE}]))', "{{route}}"),),
              unit="reqps"),
        Panel("Errors by route and status", "4xx and 5xx answers per second at the gateway, by route and "
              "status code.",
              (q(f'sum by (route, status) (rate(augserve_gateway_requests_total{{status=~"[45].."}}[{RATE}]))',
                 "{{route}} {{status}}"),),
              unit="reqps"),
        Panel("Server error ratio", "Share of gateway answers that are 5xx (0 while there are none).",
              (q(f'(sum(rate(augserve_gateway_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)) '
                 f'/ sum(rate(augserve_gateway_requests_total[{RATE}]))', "5xx share"),),
              unit="percentunit"),
        Panel("Routing decisions", "Where the gateway put each request (augserve_gateway_routed_requests_total): "
              "`affinity` = the own stream of the worker holding its program, `shared` = the pull-balanced "
              "stream, by reason (pull mode, no program, no/dead/overloaded holder).",
              (q(f"sum by (route, reason) (rate(augserve_gateway_routed_requests_total[{RATE}]))",
                 "{{route}} {{reason}}"),),
              unit="reqps"),
        Panel("In-flight requests", "Completion requests being served by the gateway, and requests held by each "
              "engine worker (running, queued in vLLM or paused at an API call).",
              (q("sum(augserve_gateway_inflight_requests)", "gateway"),
               q(f"sum by (worker) (augserve_engine_inflight_requests{{{WORKER}}})", "{{worker}}")),
              stack=False),
    ))
    latency = Row("Latency", (
        Panel("End-to-end latency", "Gateway request duration until the last byte (streams included) of the "
              "generation routes: p50/p90/p99. Includes the time paused at API calls.",
              quantiles("augserve_gateway_request_duration_seconds", "", GENERATION), unit="s"),
        Panel("Time to first token", "Arrival at the gateway to the first generated text: p50/p90/p99.",
              quantiles("augserve_gateway_time_to_first_token_seconds", ""), unit="s"),
        Panel("Normalized latency", "End-to-end latency minus the time paused at API calls, per generated "
              "token (the InferCept paper's metric): p50/p90/p99.",
              quantiles("augserve_gateway_normalized_latency_seconds", ""), unit="s"),
        Panel("Time per output token", "Time per generated token after the first, API calls excluded: p50/p90/p99.",
              quantiles("augserve_gateway_time_per_output_token_seconds", ""), unit="s"),
    ))
    workers = Row("Engine workers", (
        Panel("KV cache usage per worker", "Share of each worker's vLLM KV pool in use (vllm:kv_cache_usage_perc): "
              "the memory paused requests compete for.",
              (q(f"max by (worker) (vllm:kv_cache_usage_perc{{{WORKER}}})", "{{worker}}"),),
              unit="percentunit"),
        Panel("Finished requests by reason", "Requests finished per second on each worker, by finish reason.",
              (q(f"sum by (worker, finish_reason) (rate(augserve_engine_requests_total{{{WORKER}}}[{RATE}]))",
                 "{{worker}} {{finish_reason}}"),),
              unit="reqps"),
        Panel("Generated tokens per worker", "Output tokens generated per second on each worker, over all "
              "segments of a request (augserve_engine_generated_tokens_total, counted when a request finishes).",
              (q(f"sum by (worker) (rate(augserve_engine_generated_tokens_total{{{WORKER}}}[{RATE}]))", "{{worker}}"),),
              unit="suffix:tok/s"),
        Panel("Scrape targets up", "Prometheus scrape targets answering, per job (1 per healthy process).",
              (q("sum by (job) (up)", "{{job}}"),)),
    ))
    return Dashboard(
        uid="augserve-overview", title="augserve / Overview",
        description="Request rate, errors, latency and KV usage of the whole stack.",
        rows=(traffic, latency, workers),
        variables=(POLICY_VARIABLE, WORKER_VARIABLE),
    )
