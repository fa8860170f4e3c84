"""The soak, short, on the tiny model: `python -m bench --profile soak` as CI can afford it.

The real stack as processes under the supervisor (as `make run`), two engine workers, streaming
and non-streaming clients on the bench's scripted plans (calls that pause), while Redis and the
Celery executor are SIGKILLed in turn and restarted by the supervisor. No engine-worker kill here:
its restart alone took 212 s on the loaded 2-core machine (the whole test 445 s with it), and
tests/e2e/test_failover.py kills one mid-request already; the full soak kills one. Every
request sent must be accounted for: succeeded whole, or failed with a clear error; none hung,
none with a duplicated tool result; every fault survived, nothing else died. The real soak (the
default model, minutes, README "Faults") stays out of `make test`.
"""

from __future__ import annotations

from bench.soak import SoakConfig, passed, run_soak
from bench.soak_report import table


def test_a_short_soak_reconciles_every_request_through_redis_and_executor_kills(tmp_path):
    cfg = SoakConfig(model="tiny", duration_s=40, clients=6, faults=("redis", "executor"), first_fault_s=5,
                     fault_every_s=15, quiet_tail_s=15, restart_after_s=1, hang_after_s=90, kv_cache_tokens=2048,
                     out_dir=tmp_path)
    results, path = run_soak(cfg)
    summary = results["summary"]
    print("\n" + table(summary, results["memory"]))
    assert path.exists()
    assert [f["service"] for f in results["faults"]] == ["redis", "api-executor"]
    assert summary["faults_injected"] == 2, summary["faults_skipped"]
    assert summary["sent"] >= 8 and summary["streaming"] and summary["calls"]
    assert summary["during_faults"]["requests"] > 0
    assert summary["hung"] == 0 and summary["duplicated_tool_results"] == 0, summary
    assert passed(results), (summary, results["memory"])
