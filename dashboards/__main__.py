"""`python -m dashboards [generate|check|push]`.

  generate   write dashboards/*.json from the code (the default)
  check      exit 1 when a JSON file differs from what the code generates
  push       push the dashboards and their datasources to an existing Grafana
"""

from __future__ import annotations

import argparse
import os
import sys

from dashboards.catalog import stale, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("generate", help="write dashboards/*.json")
    sub.add_parser("check", help="fail when dashboards/*.json are stale")
    push = sub.add_parser("push", help="push to an existing Grafana (grafana-client)")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. https://grafana.example.com")
    push.add_argument("--token", default=os.environ.get("GRAFANA_TOKEN"),
                      help="service account token (default: $GRAFANA_TOKEN; or user:password in --url)")
    push.add_argument("--prometheus-url", default="http://prometheus:9090",
                      help="Prometheus URL as Grafana's server reaches it (datasource uid 'prometheus')")
    push.add_argument("--jaeger-url", default=None, help="Jaeger query URL (datasource uid 'jaeger'); none by default")
    args = parser.parse_args(argv)

    if args.command == "push":
        from dashboards.push import push as do_push  # grafana-client only for this command

        do_push(args.url, args.token, args.prometheus_url, args.jaeger_url)
        return 0
    if args.command == "check":
        paths = stale()
        for path in paths:
            print(f"stale: {path} (run python -m dashboards generate)", file=sys.stderr)
        return 1 if paths else 0
    for path in write_all():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
