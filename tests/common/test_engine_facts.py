"""Reading an engine's effective settings back: vLLM's config dump and its CPU binding log."""

from __future__ import annotations

import os

import pydantic
import pytest

from common.engine_facts import COMPARED, EngineFacts, config_facts, cpu_binding, differences, facts

# What vLLM 0.32's CPU backend logs (vllm/utils/ompmultiprocessing.py) for the stock server on a
# 2-core machine (1 core reserved for the front-end), then after an explicit binding.
AUTO_LOG = """(EngineCore pid=10) INFO 12-01 09:00:00 [ompmultiprocessing.py:185] OpenMP thread binding info: 
\tVLLM_CPU_OMP_THREADS_BIND='auto', auto_setup=True, skip_setup=False
\tlocal_world_size=1, reserve_cpu_num=1
\tlocal_rank=0, core ids=[0]
\treserved_cpus=[1]
"""
EXPLICIT_LOG = """(EngineCore pid=11) INFO 12-01 09:01:00 [ompmultiprocessing.py:185] OpenMP thread binding info: 
\tVLLM_CPU_OMP_THREADS_BIND='0-1', auto_setup=False, skip_setup=False
\tlocal_world_size=1, reserve_cpu_num=0
\tlocal_rank=0, core ids=[0, 1]
\treserved_cpus=[]
"""


def test_the_last_binding_in_a_log_wins():
    assert cpu_binding(AUTO_LOG) == ([[0]], [1])
    assert cpu_binding(AUTO_LOG + "restarted\n" + EXPLICIT_LOG) == ([[0, 1]], [])
    assert cpu_binding("no binding logged (a GPU)") == (None, None)


def test_config_facts_from_a_real_vllm_config_dump(tiny_model_dir):
    """The same dump vLLM's /server_info serves, of a config built by vLLM itself."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm.config import VllmConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    config = AsyncEngineArgs(model=str(tiny_model_dir), enforce_eager=True, max_model_len=384,
                             max_num_batched_tokens=512, max_num_seqs=7, block_size=128,
                             kv_cache_memory_bytes=64 << 20, dtype="float32").create_engine_config()
    dumped = pydantic.TypeAdapter(VllmConfig).dump_python(config, mode="json", fallback=str)
    got = config_facts(dumped)
    assert got | {"kv_pool_blocks": None} == {
        "dtype": "float32", "max_model_len": 384, "block_size": 128, "kv_pool_blocks": None,
        "enable_prefix_caching": True, "enable_chunked_prefill": True, "max_num_batched_tokens": 512,
        "max_num_seqs": 7, "async_scheduling": False, "enforce_eager": True, "kv_cache_dtype": "auto",
        "scheduling_policy": "fcfs"}
    assert got["kv_pool_blocks"] == 0  # before the engine core allocated its pool


def _facts(**changes) -> EngineFacts:
    base = dict(dtype="float32", max_model_len=384, block_size=128, kv_pool_blocks=7, enable_prefix_caching=True,
                enable_chunked_prefill=True, max_num_batched_tokens=2048, max_num_seqs=64, async_scheduling=False,
                enforce_eager=True, kv_cache_dtype="auto", scheduling_policy="fcfs")
    return facts(base | changes, EXPLICIT_LOG)


def test_differences_name_each_differing_field_and_system():
    assert differences({"a": _facts(), "b": _facts(scheduling_policy="priority")}) == {}  # not compared
    diff = differences({"a": _facts(), "b": _facts(max_num_batched_tokens=4096)})
    assert diff == {"max_num_batched_tokens": {"a": 2048, "b": 4096}}
    one_core = facts(_facts().model_dump(exclude={"cpu_core_ids", "reserved_cpus"}), AUTO_LOG)
    assert differences({"a": _facts(), "b": one_core}) == {"cpu_core_ids": {"a": [[0, 1]], "b": [[0]]}}
    unread = differences({"a": _facts(), "b": None})
    assert set(unread) == set(COMPARED)


@pytest.fixture
def tiny_model_dir():
    from stack.models import build_tiny

    return build_tiny()
