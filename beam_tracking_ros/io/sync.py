"""Approximate-time synchronization compatible with ROS 2's Python ``message_filters``.

Why a fallback: ``message_filters`` is not on PyPI, so on these machines the beam tracker and the
dataset builder need their own. Where the real package is importable, :func:`compat.make_synchronizer`
uses it; this module reproduces the *Python* ``message_filters.ApproximateTimeSynchronizer`` (the one an
rclpy node gets), so the tracker pairs the same messages with either implementation and the same tests
(test/test_ros_sync.py, parametrized over both) pass unchanged.

The policy, as message_filters' Python code implements it:

* one dict per input, stamp (int ns) -> message, bounded by ``queue_size``: when a queue grows beyond
  it the oldest stamp is dropped (an old, out-of-order message arriving at a full queue is therefore
  dropped at once); a second message with an identical stamp replaces the first;
* every arriving message is the pivot: for each other input, the candidates are its queued messages
  within ``slop`` of the pivot, sorted by their distance to it (ties by arrival order); the first
  combination in that order whose spread (newest - oldest stamp) is **strictly less** than ``slop``
  is emitted (the closest candidates are tried first, so this is the best set for the pivot);
* the emitted messages leave their queues; unmatched messages stay until the queue bound pushes them out
  (so memory never grows beyond ``queue_size`` per input);
* messages without ``header.stamp`` are ignored with a warning unless ``allow_headerless`` (then they
  get the arrival time).

This differs from the C++ ApproximateTime policy (which waits for the best set across future messages and
drops everything older than an emitted set); for the Python API the rule above is what ROS does.

Our search visits the same combinations in the same order as message_filters' ``itertools.product``
but prunes a branch as soon as its partial spread reaches ``slop``, so 3-4 inputs with long queues stay
cheap. Diagnostics: :class:`SyncMonitor` counts received, emitted, dropped (queue overflow, duplicates,
headerless), out-of-order stamps and backwards clock jumps for either implementation, and resets the
queues on a jump (a looping bag would otherwise leave newer-stamped stale messages that evict every new
one). None of this imports rclpy: the dataset builder synchronizes bag messages with it offline.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .convert import stamp_to_ns

_LOG = logging.getLogger(__name__)


def _stamp_ns_of(msg: Any) -> int | None:
    """Header stamp of ``msg`` in ns, or None when it has none (message_filters' default getter)."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    return None if stamp is None else stamp_to_ns(stamp)


class SimpleFilter:
    """Base of every filter: callbacks registered here receive this filter's output."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._next_conn = 0

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802 (ROS API)
        """Call ``cb(*msgs, *args)`` on each output; returns a connection id."""
        conn = self._next_conn
        self._next_conn += 1
        self.callbacks[conn] = (cb, args)
        return conn

    def unregisterCallback(self, conn: int) -> None:  # noqa: N802 (ROS API)
        self.callbacks.pop(conn, None)

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 (ROS API)
        """Pass ``msg`` to every registered callback (tests drive filters with this, no DDS needed)."""
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """An rclpy subscription as a filter: ``Subscriber(node, msg_type, topic, qos_profile=10)``."""

    def __init__(self, node: Any, msg_type: Any, topic: str, qos_profile: Any = 10, **kwargs: Any) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile, **kwargs)

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 (ROS API)
        return self.topic

    def __getattr__(self, key: str) -> Any:
        # message_filters serves the subscription's API (e.g. topic_name, destroy) through the filter
        if key == "sub":
            raise AttributeError(key)
        return getattr(self.sub, key)


class ApproximateTimeSynchronizer(SimpleFilter):
    """message_filters-compatible approximate-time synchronizer (policy in the module docstring)."""

    def __init__(self, fs: Sequence[Any], queue_size: int, slop: float, allow_headerless: bool = False,
                 time_getter: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not float(slop) >= 0.0:
            raise ValueError(f"slop must be a non-negative number of seconds, got {slop}")
        if len(fs) < 1:
            raise ValueError("fs: need at least one input filter")
        self.queue_size = int(queue_size)
        self.slop_ns = int(float(slop) * 1e9)  # as rclpy.duration.Duration(seconds=slop)
        self.allow_headerless = bool(allow_headerless)
        self.time_getter = time_getter
        self.lock = threading.Lock()
        self.dropped_overflow = [0] * len(fs)
        self.dropped_headerless = 0
        self.emitted = 0
        self.connectInput(fs)

    def connectInput(self, fs: Sequence[Any]) -> None:  # noqa: N802 (ROS API)
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, q, i) for i, (f, q) in enumerate(zip(fs, self.queues))]

    def _stamp(self, msg: Any) -> int | None:
        if self.time_getter is not None:
            t = self.time_getter(msg)
            if t is None:
                return None
            return stamp_to_ns(t)
        return _stamp_ns_of(msg)

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        stamp = self._stamp(msg)
        if stamp is None:
            if not self.allow_headerless:
                self.dropped_headerless += 1
                _LOG.warning("ApproximateTimeSynchronizer: message without header.stamp ignored "
                             "(allow_headerless is False)")
                return
            stamp = time.time_ns()
        with self.lock:
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
                if my_queue_index is not None:
                    self.dropped_overflow[my_queue_index] += 1
            if stamp not in my_queue:
                return  # the pivot itself was the oldest of a full queue
            others = [i for i in range(len(self.queues)) if i != my_queue_index]
            candidates: list[list[int]] = []
            for i in others:
                near = [s for s in self.queues[i] if abs(s - stamp) <= self.slop_ns]
                if not near:
                    return
                near.sort(key=lambda s: abs(s - stamp))  # stable: ties keep arrival order
                candidates.append(near)
            chosen = self._first_set(candidates, stamp)
            if chosen is None:
                return
            if my_queue_index is not None:
                chosen.insert(my_queue_index, stamp)
            msgs = [q.pop(s) for q, s in zip(self.queues, chosen)]
            self.emitted += 1
        self.signalMessage(*msgs)

    def _first_set(self, candidates: list[list[int]], pivot: int) -> list[int] | None:
        """First combination in product order with spread < slop; prunes spreads already >= slop."""
        chosen: list[int] = []

        def dfs(k: int, lo: int, hi: int) -> bool:
            if k == len(candidates):
                return hi - lo < self.slop_ns
            for s in candidates[k]:
                nlo, nhi = min(lo, s), max(hi, s)
                if nhi - nlo >= self.slop_ns:
                    continue  # any completion keeps this spread or widens it
                chosen.append(s)
                if dfs(k + 1, nlo, nhi):
                    return True
                chosen.pop()
            return False

        return chosen if dfs(0, pivot, pivot) else None


def reset_synchronizer(sync: Any) -> None:
    """Empty every input queue of a synchronizer (ours or message_filters'), in place.

    In place because each input's callback holds a reference to its queue dict. Call it from an input
    callback or a timer, never from the synchronizer's own output callback: message_filters holds its
    (non-reentrant) lock and still deletes the emitted messages after that callback returns.
    """
    lock = getattr(sync, "lock", None)
    if lock is not None:
        with lock:
            for q in sync.queues:
                q.clear()
    else:
        for q in sync.queues:
            q.clear()


class ClockJumpDetector:
    """Detects time going backwards by more than ``tolerance_s`` (a looping bag, a restarted simulator).

    Small regressions (reordering on the wire) are out-of-order messages, not jumps.
    """

    def __init__(self, tolerance_s: float = 1.0) -> None:
        if not tolerance_s >= 0.0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        self.tolerance_ns = int(tolerance_s * 1e9)
        self.latest_ns: int | None = None
        self.jumps = 0

    def update(self, stamp_ns: int) -> bool:
        """Feed a stamp; True when it jumped backwards (the detector then restarts from it)."""
        if self.latest_ns is not None and stamp_ns < self.latest_ns - self.tolerance_ns:
            self.jumps += 1
            self.latest_ns = stamp_ns
            return True
        self.latest_ns = stamp_ns if self.latest_ns is None else max(self.latest_ns, stamp_ns)
        return False

    def reset(self) -> None:
        self.latest_ns = None


@dataclass
class SyncStats:
    """Counters of a synchronizer's inputs and output, for /diagnostics."""

    names: list[str]
    received: list[int]
    out_of_order: list[int]
    queued: list[int]
    dropped: list[int]
    emitted: int
    clock_jumps: int
    last_emitted_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"emitted": self.emitted, "clock_jumps": self.clock_jumps}
        for i, n in enumerate(self.names):
            d[f"{n}.received"] = self.received[i]
            d[f"{n}.out_of_order"] = self.out_of_order[i]
            d[f"{n}.queued"] = self.queued[i]
            d[f"{n}.dropped"] = self.dropped[i]
        d.update(self.extra)
        return d


class SyncMonitor:
    """Counts what goes into and out of a synchronizer, for ours and message_filters' alike.

    It listens on the same input filters and on the synchronizer's output (registerCallback is the
    whole API it needs), reads queue lengths from ``sync.queues``, and derives drops as
    received - emitted - queued per input (overflow, duplicate stamps and ignored headerless messages
    all count). A stamp more than ``jump_tolerance_s`` older than the newest seen on any input is a
    backwards clock jump: the queues are emptied (``reset_on_jump``), the callbacks in
    ``on_clock_jump`` run (the tracker resets its window there).
    """

    def __init__(self, filters: Sequence[Any], sync: Any, names: Sequence[str] | None = None,
                 jump_tolerance_s: float = 1.0, reset_on_jump: bool = True) -> None:
        n = len(filters)
        self.names = list(names) if names is not None else [f"input{i}" for i in range(n)]
        if len(self.names) != n:
            raise ValueError(f"names: {len(self.names)} names for {n} inputs")
        self.sync = sync
        self.received = [0] * n
        self.out_of_order = [0] * n
        self._latest: list[int | None] = [None] * n
        self._jumps = ClockJumpDetector(jump_tolerance_s)
        self.emitted = 0
        self.last_emitted_ns: int | None = None
        self.reset_on_jump = reset_on_jump
        self.on_clock_jump: list[Callable[[int], None]] = []
        self._lock = threading.Lock()
        for i, f in enumerate(filters):
            f.registerCallback(self._on_input, i)
        sync.registerCallback(self._on_output)

    def _on_input(self, msg: Any, i: int) -> None:
        stamp = _stamp_ns_of(msg)
        jumped = False
        with self._lock:
            self.received[i] += 1
            if stamp is None:
                return
            latest = self._latest[i]
            if latest is not None and stamp < latest:
                self.out_of_order[i] += 1
            self._latest[i] = stamp if latest is None else max(latest, stamp)
            if self._jumps.update(stamp):
                jumped = True
                self._latest = [None] * len(self._latest)
                self._latest[i] = stamp
        if jumped:
            _LOG.warning("clock jumped backwards on %s to %.3f s", self.names[i], stamp * 1e-9)
            if self.reset_on_jump:
                # the wiped messages (and this one, already queued) then count as dropped in stats()
                reset_synchronizer(self.sync)
            for cb in list(self.on_clock_jump):
                cb(stamp)

    def _on_output(self, *msgs: Any) -> None:
        stamps = [s for s in (_stamp_ns_of(m) for m in msgs) if s is not None]
        with self._lock:
            self.emitted += 1
            if stamps:
                self.last_emitted_ns = max(stamps)

    @property
    def clock_jumps(self) -> int:
        return self._jumps.jumps

    def stats(self) -> SyncStats:
        with self._lock:
            queued = [len(q) for q in self.sync.queues]
            dropped = [max(0, r - self.emitted - q) for r, q in zip(self.received, queued)]
            extra: dict[str, Any] = {}
            if hasattr(self.sync, "dropped_overflow"):
                extra["overflow"] = list(self.sync.dropped_overflow)
            return SyncStats(self.names, list(self.received), list(self.out_of_order), queued, dropped,
                             self.emitted, self.clock_jumps, self.last_emitted_ns, extra)
