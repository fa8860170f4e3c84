"""System names: POLICY+SCHEDULER:key=value... -> the engine worker's settings, and back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.config import FASTSERVE_SYSTEMS, PROFILES, PoolSizing, engine_settings
from bench.system_names import split_system, system_name
from bench.systems import OurStack, stack_config
from engine_worker.policies.schedulers import SCHEDULERS
from stack.processes import free_port
from stack.redis_server import start_redis

SIZING = PoolSizing(kv_cache_bytes=768 * 23_040, pool_tokens=768, max_model_len=384, bytes_per_token=23_040)


@pytest.mark.parametrize(("name", "parts"), [
    ("infercept", ("infercept", "fcfs", {})),
    ("infercept+lamps", ("infercept", "lamps", {})),
    ("infercept+fastserve:starvation_s=0.3", ("infercept", "fastserve", {"starvation_s": 0.3})),
    ("swap+fastserve:preempt=false:q0_s=0.02", ("swap", "fastserve", {"preempt": False, "q0_s": 0.02})),
])
def test_split_and_name_round_trip(name, parts):
    assert split_system(name) == parts
    assert split_system(system_name(*parts)) == parts


def test_a_stack_reports_its_options_sorted():
    assert system_name("infercept", "fastserve", {"starvation_s": 0.3, "preempt": False}) == \
        "infercept+fastserve:preempt=false:starvation_s=0.3"


@pytest.mark.parametrize("bad", ["infercept+fastserve:starvation_s", "infercept+fastserve:=1",
                                 "infercept+fastserve:starvation_s=fast"])
def test_malformed_options_are_refused_with_the_name(bad):
    with pytest.raises(ValueError, match="infercept\\+fastserve"):
        split_system(bad)


def test_the_options_reach_the_worker_as_json(tmp_path: Path):
    cfg = PROFILES["fastserve"]
    stack = stack_config(cfg, "infercept+fastserve:starvation_s=0.3", tmp_path, engine_settings(cfg, SIZING),
                         tmp_path, operator_key="bench-operator-key")
    assert stack.gateway_env["AUGSERVE_OPERATOR_API_KEYS"] == "bench-operator-key"  # its plans need that scope
    env = stack.worker_env
    assert env["AUGSERVE_SCHEDULER"] == "fastserve"
    assert json.loads(env["AUGSERVE_SCHEDULER_OPTIONS"]) == {"starvation_s": 0.3}
    assert env["AUGSERVE_MAX_NUM_SEQS"] == "2"  # the profile's few running slots


def test_the_fastserve_profile_compares_fcfs_with_both_guards():
    assert set(FASTSERVE_SYSTEMS) == set(PROFILES["fastserve"].policies)
    for name in FASTSERVE_SYSTEMS:
        assert split_system(name)[1] in SCHEDULERS
    guards = {split_system(n)[2].get("starvation_s") for n in FASTSERVE_SYSTEMS if split_system(n)[1] == "fastserve"}
    assert {None, 0.3} <= guards  # the code's default (3 s) and the paper's 300 ms


def _filesystem_type(path: Path) -> str:
    """The type of the mount `path` lies on (the longest mount point above it)."""
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    point, kind = max(((p, k) for p, k in mounts if path == Path(p) or Path(p) in path.parents),
                      key=lambda m: len(m[0]))
    return kind


def test_under_realtime_each_stack_keeps_its_redis_files_in_ram_and_removes_them(tmp_path: Path):
    quick = PROFILES["quick"]
    engine = engine_settings(quick, SIZING)
    assert stack_config(quick, "infercept", tmp_path, engine, tmp_path / "0-infercept", "k").redis_dir is None
    realtime = dataclasses.replace(quick, realtime=True)
    dirs = [stack_config(realtime, name, tmp_path, engine, tmp_path / f"{i}-{name}", "k").redis_dir
            for i, name in enumerate(["infercept", "vllm"])]
    assert dirs[0] is not None and dirs[1] is not None and dirs[0] != dirs[1]
    assert _filesystem_type(dirs[0]) == "tmpfs"
    # A stack started with it writes its append-only file there and nowhere under its state dir.
    redis = start_redis(free_port(), dirs[0], tmp_path / "logs")
    try:
        assert any(dirs[0].rglob("*.aof"))
        assert not (tmp_path / "redis").exists()
    finally:
        redis.stop()
    # The system's stop removes them (they are in RAM, and nothing reads them after the run).
    ours = OurStack(realtime, "infercept", tmp_path, engine, tmp_path / "0-infercept", log=lambda _: None)
    assert ours.stack.cfg.redis_dir == dirs[0]
    ours.stop()
    assert not dirs[0].exists()
