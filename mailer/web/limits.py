"""How often, and how many at once: sign-in and preview limits, the client address, and
the thread slots that keep slow work away from the unsubscribe endpoints.

* **Sign-in limits** (:class:`LoginLimiter`): failures are counted per (address, client
  IP) and per client IP in a sliding window, and over all clients per minute. Any full
  count answers 429 before a password is checked, so a flood of random addresses (each
  new one escapes the per-address count) costs no Argon2 work once the per-IP or the
  global count is full. A success clears only its own (address, IP) count.
* **Preview limit** (:class:`RateLimiter` keyed by user): renders per user per minute.
* **Thread slots** (:class:`ThreadSlots`): blocking work (a password check, a preview
  render) runs in threads of its own capacity limiter, never holding a token of the
  default pool that serves the sync routes and the unsubscribe writes; callers beyond the
  capacity wait in the event loop.
* **Client address** (:func:`client_ip`): the TCP peer, unless the peer is a configured
  trusted proxy (``web.trusted_proxies``); then the nearest address in
  ``X-Forwarded-For`` that is not a trusted proxy. A forged header from anyone else is
  ignored.

The counts are per process (``mailer web`` is one process).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class RateLimiter:
    """Events per key in a sliding window; thread-safe; memory bounded by ``max_keys``
    (keys whose events all expired are dropped when the bound is reached)."""

    limit: int
    window: timedelta
    max_keys: int = 100_000
    _events: dict[Hashable, deque[datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: Hashable, now: datetime) -> deque[datetime]:
        times = self._events.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def full(self, key: Hashable, now: datetime) -> bool:
        """True when ``key`` has ``limit`` events inside the window."""
        with self._lock:
            return len(self._recent(key, now)) >= self.limit

    def add(self, key: Hashable, now: datetime) -> None:
        """Record one event for ``key``."""
        with self._lock:
            if key not in self._events and len(self._events) >= self.max_keys:
                for stale in [k for k, v in self._events.items() if not v or v[-1] <= now - self.window]:
                    del self._events[stale]
            times = self._recent(key, now)
            times.append(now)
            self._events[key] = times

    def take(self, key: Hashable, now: datetime) -> bool:
        """Record one event unless the key is full; True when it was recorded."""
        with self._lock:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                return False
        self.add(key, now)
        return True

    def clear(self, key: Hashable) -> None:
        """Forget ``key``'s events."""
        with self._lock:
            self._events.pop(key, None)


class LoginRefusal(StrEnum):
    """Which sign-in limit is full."""

    ADDRESS = "address"
    IP = "ip"
    GLOBAL = "global"


class LoginLimiter:
    """The three sign-in failure counts (see module docstring)."""

    def __init__(
        self,
        *,
        per_address: int = 5,
        per_ip: int = 20,
        per_minute: int = 60,
        window: timedelta = timedelta(minutes=15),
    ) -> None:
        self.pairs = RateLimiter(per_address, window)
        self.ips = RateLimiter(per_ip, window)
        self.overall = RateLimiter(per_minute, timedelta(minutes=1))

    @staticmethod
    def _pair(email: str, ip: str) -> tuple[str, str]:
        return (email.strip().lower(), ip)

    def refusal(self, email: str, ip: str, now: datetime) -> LoginRefusal | None:
        """The first full count for this attempt, else None (it may go ahead)."""
        if self.overall.full("*", now):
            return LoginRefusal.GLOBAL
        if self.ips.full(ip, now):
            return LoginRefusal.IP
        if self.pairs.full(self._pair(email, ip), now):
            return LoginRefusal.ADDRESS
        return None

    def blocked(self, email: str, ip: str, now: datetime) -> bool:
        """True when this attempt may not go ahead."""
        return self.refusal(email, ip, now) is not None

    def failed(self, email: str, ip: str, now: datetime) -> None:
        """Count one failure in all three."""
        self.pairs.add(self._pair(email, ip), now)
        self.ips.add(ip, now)
        self.overall.add("*", now)

    def succeeded(self, email: str, ip: str) -> None:
        """Forget this address and IP's failures (the per-IP and global counts stay)."""
        self.pairs.clear(self._pair(email, ip))


class ThreadSlots:
    """Run blocking calls in at most ``capacity`` threads at once, outside the default
    thread pool; extra callers wait in the event loop, holding no thread.

    One capacity limiter per event loop (a limiter belongs to the loop that made it; the
    server has one loop, a test client may start several)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    def _limiter(self) -> CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = CapacityLimiter(self.capacity)
        return limiter

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a slot's thread; its result or exception."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter())


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """``web.trusted_proxies`` as networks (validated by the settings already)."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: Request, trusted: Sequence[Network] = ()) -> str:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    nearest ``X-Forwarded-For`` hop that is not itself a trusted proxy (hops further
    left were written by the client and prove nothing)."""
    peer = request.client.host if request.client is not None else "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in request.headers.getlist("x-forwarded-for") for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not any(ip in net for net in trusted):
            return str(ip)
    return peer
