"""One way to hear of something in the gateway: `subscribe(listener)` returns the function that ends it.

Every room that tells others of something (the pipeline of a stored reading, the plan keeper of a plan
applied, the outbox of a quarantined record, the uplink of an ack) keeps a `Listeners` and calls
`notify`. A listener that raises is logged in one line and never fails the caller, nor keeps the other
listeners from hearing: what was stored stays stored whatever a page or a printer does with the news.
The line names the listener, the exception's type and where it was raised, never the exception's text
or the arguments (they may carry a patient's values).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Generic, ParamSpec

log = logging.getLogger(__name__)

P = ParamSpec("P")
Unsubscribe = Callable[[], None]


class _Subscription(Generic[P]):
    """One subscription: the same function subscribed twice is two subscriptions, ended one by one."""

    __slots__ = ("listener",)

    def __init__(self, listener: Callable[P, object]) -> None:
        self.listener = listener


class Listeners(Generic[P]):
    """The listeners of one kind of news, called in the order they subscribed.

    `subscribe` and its unsubscribe may be called from any thread and during `notify` (a listener
    unsubscribing itself is fine); `notify` calls the listeners on the caller's thread."""

    def __init__(self, what: str) -> None:
        self._what = what  # for the log line: "reading", "plan applied", ...
        self._subscriptions: tuple[_Subscription[P], ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[P, object]) -> Unsubscribe:
        """Hear of every notification from now on; call the returned function (any number of times) to stop."""
        subscription = _Subscription(listener)
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)

        def unsubscribe() -> None:
            with self._lock:
                self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

        return unsubscribe

    def notify(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell every listener; one that raises is logged in one line and the others still hear. Never
        raises (a BaseException such as cancellation is not a listener's failure, and passes)."""
        for subscription in self._subscriptions:
            try:
                subscription.listener(*args, **kwargs)
            except Exception as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "an unknown place"
                log.error("a %s listener (%s) failed: %s at %s; the others still heard of it", self._what,
                          _name(subscription.listener), type(exc).__name__, where)

    def __len__(self) -> int:
        return len(self._subscriptions)


def _name(listener: Callable[..., object]) -> str:
    return str(getattr(listener, "__qualname__", None) or type(listener).__name__)
