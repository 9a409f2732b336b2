"""The Redis backend: the scheduler's state in Redis, shared by processes and hosts.

``backend`` holds `RedisBackend` (the operations and their two runners), ``codec`` the wire
format of the Lua ``script``, ``health`` what happens while Redis is away, ``wakeups`` the
cross-process wake-ups and ``clock`` Redis time as a `Clock`.
"""

from llm_routing._redact import redact_url
from llm_routing.schedule.redis.backend import _ASYNC_POOL_SIZE, RedisBackend
from llm_routing.schedule.redis.clock import RedisClock
from llm_routing.schedule.redis.health import RedisUnavailableError, RedisUnavailableWarning

__all__ = [
    "_ASYNC_POOL_SIZE",
    "RedisBackend",
    "RedisClock",
    "RedisUnavailableError",
    "RedisUnavailableWarning",
    "redact_url",
]
