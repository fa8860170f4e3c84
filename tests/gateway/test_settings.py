"""GatewaySettings: environment parsing and refusing unsafe configurations."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from stack.processes import REPO_ROOT


def test_defaults():
    s = GatewaySettings(_env_file=None)
    assert (s.host, s.port, s.model_id, s.max_model_len) == ("127.0.0.1", 8000, "SmolLM2-135M-Instruct", 4096)
    assert s.api_keys == [] and s.max_body_bytes == 1 << 20 and s.request_timeout_s == 600


@pytest.mark.parametrize("raw", ['["key-aaaaaaaa", "key-bbbbbbbb"]', "key-aaaaaaaa, key-bbbbbbbb"])
def test_api_keys_from_env_as_json_or_comma_list(monkeypatch, raw):
    monkeypatch.setenv("AUGSERVE_API_KEYS", raw)
    assert GatewaySettings(_env_file=None).api_keys == ["key-aaaaaaaa", "key-bbbbbbbb"]


def test_production_refuses_to_run_without_keys(monkeypatch):
    monkeypatch.setenv("AUGSERVE_ENV", "production")
    with pytest.raises(ValidationError, match="AUGSERVE_API_KEYS"):
        GatewaySettings(_env_file=None)
    monkeypatch.setenv("AUGSERVE_API_KEYS", '["a-long-enough-key"]')
    assert GatewaySettings(_env_file=None).api_keys == ["a-long-enough-key"]


def test_nonsense_is_refused():
    with pytest.raises(ValidationError, match="at least 8 characters"):
        GatewaySettings(_env_file=None, api_keys=["short"])
    with pytest.raises(ValidationError, match="default_max_tokens"):
        GatewaySettings(_env_file=None, max_model_len=100, default_max_tokens=100)
    with pytest.raises(ValidationError):
        GatewaySettings(_env_file=None, port=0)


def test_python_m_gateway_exits_on_bad_configuration():
    env = {"AUGSERVE_ENV": "production", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "gateway"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "AUGSERVE_API_KEYS" in done.stderr
