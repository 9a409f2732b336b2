"""Old home of the tests' redis-server starter, kept so existing imports work.

See `tests.support.redis` (and `tests.support.ports` for `free_port`).
"""

from tests.support.redis import (
    INSTALL_HINT,
    RedisServer,
    find_redis_server,
    free_port,
    redis_binary,
    running_server,
)

__all__ = [
    "INSTALL_HINT",
    "RedisServer",
    "find_redis_server",
    "free_port",
    "redis_binary",
    "running_server",
]
