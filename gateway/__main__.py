"""`python -m gateway`: serves the gateway with uvicorn, configured from AUGSERVE_* variables."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from common import tracing
from gateway import metrics
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.slow_clients import header_deadline_protocol


def main() -> int:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        print(f"gateway: bad configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracing.setup("gateway", settings.otlp_endpoint)
    metrics.count_redis_outages()
    # One process: the Prometheus metrics live in this process's memory.
    # Slow clients: headers (gateway/slow_clients.py), body (gateway/deps.py), idle keep-alive.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                http=header_deadline_protocol(settings.header_timeout_s),
                timeout_keep_alive=settings.keepalive_timeout_s)  # type: ignore[arg-type]  # a float works (a timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
