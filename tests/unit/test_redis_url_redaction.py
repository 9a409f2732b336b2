"""A Redis URL's password never shows in the reprs and errors that name the server."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("redis")

from llm_routing._redact import redact_url
from llm_routing.cost.redis_ledger import RedisLedger, RedisLedgerUnavailableError
from llm_routing.schedule.policy import RateLimits, Request
from llm_routing.schedule.redis import RedisBackend, RedisUnavailableError

SECRET = "hunter2-not-a-real-password"
# Port 1 on loopback: nothing listens, so every call fails at once with "connection refused".
DOWN = f"redis://:{SECRET}@127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@host:6379/0", "redis://:***@host:6379/0"),
        (f"redis://alice:{SECRET}@host/0", "redis://alice:***@host/0"),
        (f"redis://{SECRET}@host", "redis://***@host"),
        (f"rediss://host/0?db=1&password={SECRET}", "rediss://host/0?db=1&password=***"),
        (f"unix:///tmp/redis.sock?password={SECRET}", "unix:///tmp/redis.sock?password=***"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("separator", ["#", "?", "@"])
def test_redact_url_hides_a_password_with_a_url_delimiter_in_it(separator):
    password = f"pass{separator}word-{SECRET}"
    assert SECRET not in redact_url(f"redis://:{password}@host:6379/0")


def test_backend_repr_hides_the_password():
    backend = RedisBackend(DOWN, socket_timeout=0.2)
    assert SECRET not in repr(backend)
    assert "127.0.0.1:1" in repr(backend)


def test_backend_unavailable_error_hides_the_password():
    backend = RedisBackend(DOWN, socket_timeout=0.2)
    with pytest.raises(RedisUnavailableError) as raised:
        backend.try_acquire("openai:gpt-4o-mini", RateLimits(rpm=10), Request(1, 1), "r1")
    assert SECRET not in str(raised.value)
    assert "127.0.0.1:1" in str(raised.value)


def test_ledger_repr_and_unavailable_error_hide_the_password():
    ledger = RedisLedger(DOWN, socket_timeout=0.2)
    with pytest.raises(RedisLedgerUnavailableError) as raised:
        ledger.reserve(Decimal("0.01"), [])
    assert SECRET not in repr(ledger)
    assert SECRET not in str(raised.value)
