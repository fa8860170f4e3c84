"""OpenAI-compatible REST gateway: validates, templates and tokenizes requests, queues them for the
engine workers on Redis and relays their output. See gateway/README.md."""
