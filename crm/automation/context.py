"""Which rules' actions are running now: events published meanwhile carry the chain (loop protection)."""

from contextlib import contextmanager
from contextvars import ContextVar

_chain: ContextVar[tuple[int, ...]] = ContextVar("crm_automation_chain", default=())


def current_chain() -> tuple[int, ...]:
    return _chain.get()


@contextmanager
def running(chain: tuple[int, ...]):
    """While a run's actions execute: every event they publish names ``chain`` (rule ids, in order)."""
    token = _chain.set(tuple(chain))
    try:
        yield
    finally:
        _chain.reset(token)
