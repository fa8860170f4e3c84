"""The http kind calls registered endpoints only, against a real local HTTP server."""

from __future__ import annotations

import json

import pytest

from api_executor.errors import ToolError, TransientError
from api_executor.kinds import http
from common.settings import HttpApiSpec
from stack.processes import free_port


@pytest.fixture
def apis(local_http) -> dict[str, HttpApiSpec]:
    base = local_http.base
    return {
        "echo": HttpApiSpec(url=f"{base}/echo"),
        "fixed": HttpApiSpec(url=f"{base}/echo?key=operator-secret&format=json"),
        "post": HttpApiSpec(url=f"{base}/echo", method="POST"),
        "big": HttpApiSpec(url=f"{base}/big"),
        "flaky": HttpApiSpec(url=f"{base}/status/503"),
        "missing": HttpApiSpec(url=f"{base}/status/404"),
        "redirect": HttpApiSpec(url=f"{base}/redirect"),
        "down": HttpApiSpec(url=f"http://127.0.0.1:{free_port()}/", timeout_s=2),
    }


@pytest.mark.parametrize("endpoint", ["evil", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", ""])
def test_unregistered_endpoints_are_refused(apis, local_http, endpoint: str) -> None:
    before = sum(local_http.hits.values())
    with pytest.raises(ToolError, match="is not registered") as info:
        http.run({"endpoint": endpoint}, apis, max_chars=1000)
    assert "registered: big, down, echo" in str(info.value)
    assert sum(local_http.hits.values()) == before


def test_refusal_with_nothing_registered() -> None:
    with pytest.raises(ToolError, match=r"'weather' is not registered \(none are registered\)"):
        http.run({"endpoint": "weather"}, {}, max_chars=1000)


def test_missing_endpoint() -> None:
    with pytest.raises(ToolError, match="missing argument 'endpoint'"):
        http.run({"url": "http://example.com"}, {}, max_chars=1000)


def test_get_with_params(apis) -> None:
    reply = json.loads(http.run({"endpoint": "echo", "params": {"q": "fox", "n": 3, "all": True}}, apis, 1000))
    assert reply == {"method": "GET", "query": {"q": "fox", "n": "3", "all": "true"}, "body": ""}


def test_the_urls_own_query_cannot_be_overridden(apis) -> None:
    reply = json.loads(http.run({"endpoint": "fixed", "params": {"q": "fox"}}, apis, 1000))
    assert reply["query"] == {"key": "operator-secret", "format": "json", "q": "fox"}
    for arguments in ({"params": {"key": "mine"}}, {"arguments": {"format": "xml", "q": "x"}}):
        with pytest.raises(ToolError, match="fixes 'key'|fixes 'format'"):
            http.run({"endpoint": "fixed", **arguments}, apis, 1000)


def test_post_with_body(apis) -> None:
    reply = json.loads(http.run({"endpoint": "post", "body": {"a": [1, 2]}}, apis, 1000))
    assert reply["method"] == "POST" and json.loads(reply["body"]) == {"a": [1, 2]}


def test_engine_form_arguments(apis) -> None:
    """The engine sends a registered tool's own arguments as {"endpoint", "arguments"}."""
    get = json.loads(http.run({"endpoint": "echo", "arguments": {"city": "Oslo", "days": [1, 2]}}, apis, 1000))
    assert get["query"] == {"city": "Oslo", "days": "[1, 2]"}
    post = json.loads(http.run({"endpoint": "post", "arguments": {"city": "Oslo"}}, apis, 1000))
    assert json.loads(post["body"]) == {"city": "Oslo"}


def test_body_on_get_refused(apis) -> None:
    with pytest.raises(ToolError, match="takes GET 'params'"):
        http.run({"endpoint": "echo", "body": {"a": 1}}, apis, 1000)


def test_long_response_truncated(apis) -> None:
    text = http.run({"endpoint": "big"}, apis, max_chars=500)
    assert text == "x" * 500 + " ... [truncated to 500 characters]"


@pytest.mark.parametrize(("endpoint", "error", "message"), [
    ("flaky", TransientError, "returned HTTP 503"),
    ("down", TransientError, "unreachable (ConnectError)"),
    ("missing", ToolError, "returned HTTP 404: status page"),
    ("redirect", ToolError, "returned HTTP 302"),
])
def test_failures(apis, endpoint: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        http.run({"endpoint": endpoint}, apis, 1000)
    assert message in str(info.value)
    assert error is TransientError or not isinstance(info.value, TransientError)


def test_bad_params(apis) -> None:
    with pytest.raises(ToolError, match="'params' must be an object"):
        http.run({"endpoint": "echo", "params": {"a": {"nested": 1}}}, apis, 1000)
