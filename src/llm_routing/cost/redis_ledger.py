"""The former home of `RedisLedger`, kept so ``llm_routing.cost.redis_ledger`` still imports.

The ledger lives in ``cost.redis`` (its Lua in ``cost._redis_script``); every public name of
this module is re-exported from there.
"""

from llm_routing.cost.redis import (
    RedisLedger,
    RedisLedgerStateLostError,
    RedisLedgerStateLostWarning,
    RedisLedgerUnavailableError,
)

__all__ = [
    "RedisLedger",
    "RedisLedgerStateLostError",
    "RedisLedgerStateLostWarning",
    "RedisLedgerUnavailableError",
]
