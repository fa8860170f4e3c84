"""Exceptions the kinds raise; tasks turn every one of them into an error ToolResult."""


class ToolError(Exception):
    """A bad call (arguments, domain, refusal): the model reads str(exc) after "error: "."""


class TransientError(ToolError):
    """Worth retrying (network, 5xx): the http kind retries with backoff before giving up."""
