"""Stock vLLM as a benchmark system: vLLM's own OpenAI server, same vLLM version, same model and
the same engine settings as our engine worker (bench.engine_settings: dtype, KV pool,
max_model_len, max_num_seqs, step token budget, chunked prefill, async scheduling, block size,
the cores its threads are bound to), eager, prefix caching on, started and stopped as one process
group (stack.processes.Service). VLLM_SERVER_DEV_MODE=1 adds vLLM's `/server_info` endpoint, the
running engine's config, which the bench compares with our worker's (it changes no engine setting).

What differs is only what the stock server cannot do: pause a request at an API call. The tool
loop runs in the client (bench.tool_loop), and scheduling is vLLM's default FCFS (our worker runs
priority scheduling to keep a resumed request's original arrival).
`--enable-prompt-tokens-details` makes usage report prefix-cache hits, so the client can count
what each re-submission recomputed.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

from bench.engine_settings import EngineSettings
from common.engine_facts import EngineFacts, config_facts, facts
from stack.processes import Service, free_port, python_module

STARTUP_TIMEOUT_S = 300.0
"""The server answered /health after ~50 s on 2 busy cores."""
_RUNNING = re.compile(r"^vllm:num_requests_(running|waiting)\{[^}]*\}\s+([0-9.eE+-]+)$", re.M)


def server_args(model_path: Path, served_name: str, engine: EngineSettings, *, port: int) -> list[str]:
    """vLLM's CLI for the stock system (pure: what a test can check)."""
    return [
        "--model", str(model_path), "--served-model-name", served_name, *engine.stock_args(),
        "--enable-prompt-tokens-details", "--host", "127.0.0.1", "--port", str(port),
    ]


def _get(url: str, timeout_s: float = 2.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read().decode() if response.status == 200 else None
    except OSError:
        return None


class StockServer:
    """One stock vLLM OpenAI server process, waited on until /health answers."""

    def __init__(self, model_path: Path, state_dir: Path, engine: EngineSettings, progress=print):
        self.port = free_port()
        self.served_name = model_path.name
        self.dtype = engine.dtype
        args = server_args(model_path, self.served_name, engine, port=self.port)
        self.service: Service = python_module(
            "stock-vllm", "vllm.entrypoints.openai.api_server", *args,
            env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_SERVER_DEV_MODE": "1",
                 **engine.cpu_env()})
        self.state_dir = state_dir
        self._progress = progress

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StockServer:
        started = time.monotonic()
        self._progress(f"  starting stock vLLM server on 127.0.0.1:{self.port} (dtype {self.dtype}) ...")
        self.service.start(self.state_dir / "logs")
        try:
            self.service.wait_until(lambda: _get(f"{self.url}/health") is not None, STARTUP_TIMEOUT_S, "/health")
        except BaseException:
            self.stop()
            raise
        self._progress(f"  stock-vllm ready ({time.monotonic() - started:.1f}s, log: {self.service.log_path})")
        return self

    def version(self) -> str | None:
        raw = _get(f"{self.url}/version")
        return json.loads(raw).get("version") if raw else None

    def engine_facts(self) -> EngineFacts | None:
        """The running engine's settings: its config from /server_info, its core binding from its log."""
        raw = _get(f"{self.url}/server_info?config_format=json", timeout_s=10)
        if raw is None or self.service.log_path is None:
            return None
        return facts(config_facts(json.loads(raw)["vllm_config"]), self.service.log_path.read_text(errors="replace"))

    def dead(self) -> list[Service]:
        return [] if self.service.alive() else [self.service]

    def idle(self) -> bool:
        """No request running or waiting in the engine (vLLM's own gauges on /metrics)."""
        text = _get(f"{self.url}/metrics")
        if text is None:
            return False
        values = [float(v) for _, v in _RUNNING.findall(text)]
        return bool(values) and sum(values) == 0

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        self.service.stop()
