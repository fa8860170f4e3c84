"""`make run`: the whole stack on this machine, until Ctrl-C.

Redis (embedded), the Celery executor, the estimator, one engine worker on vLLM and the gateway
on http://127.0.0.1:8000, all as child processes of this one; logs under .run/logs/. A service
that exits is restarted with backoff (stack/supervisor.py) and the stack keeps serving; Ctrl-C
(or SIGTERM) stops everything, each service's whole process group.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from stack.models import build_default, build_tiny
from stack.processes import REPO_ROOT, port_open
from stack.services import Stack, StackConfig
from stack.supervisor import Supervisor

EXAMPLE = """
The stack is up: {url}

  curl {url}/v1/chat/completions -H 'Content-Type: application/json' -d '{{
    "model": "SmolLM2-135M-Instruct",
    "messages": [{{"role": "user", "content": "What is 12*7?"}}],
    "tools": [{{"type": "function", "function": {{"name": "calculator",
      "parameters": {{"type": "object", "properties": {{"expression": {{"type": "string"}}}},
                     "required": ["expression"]}}}}}}],
    "tool_choice": {{"type": "function", "function": {{"name": "calculator"}}}},
    "temperature": 0, "max_tokens": 60}}'

The calculator call runs inside the server; the response's "interceptions" field shows it.
Metrics: gateway {url}/metrics, engine :{em}/metrics, estimator :{es}/metrics, executor :{ex}/metrics.
Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole stack locally.")
    parser.add_argument("--model", default="default", help="default, tiny, or a local Hugging Face model folder")
    parser.add_argument("--time-scale", type=float, default=1.0, help="scales the stand-in APIs' durations")
    args = parser.parse_args(argv)
    model = {"default": build_default, "tiny": build_tiny}.get(args.model, lambda: Path(args.model))()

    cfg = StackConfig(model_path=str(model), state_dir=REPO_ROOT / ".run", time_scale=args.time_scale)
    busy = [p for p in (cfg.gateway_port, cfg.redis_port, cfg.engine_metrics_port, cfg.estimator_port,
                        cfg.executor_metrics_port) if port_open(p)]
    if busy:
        print(f"ports already in use: {busy} (another stack running?)", file=sys.stderr)
        return 1

    print(f"==> starting the stack (model {model})", flush=True)
    stack = Stack(cfg, progress=lambda m: print(m, flush=True))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Ctrl-C stops everything even where a background launch (`make run &`) ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack.start()
        print(EXAMPLE.format(url=cfg.gateway_url, em=cfg.engine_metrics_port, es=cfg.estimator_port,
                             ex=cfg.executor_metrics_port), flush=True)
        supervisor = Supervisor(stack.services, cfg.state_dir / "logs", progress=lambda m: print(m, flush=True))
        while True:
            supervisor.poll()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        print("\n==> stopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
