"""Process events and the handlers reacting to them (``OnProcessExit`` etc., real names and keywords).

Why: ``on_exit=Shutdown()`` on a Node is how ROS 2 launch files make a node required; it is an
``OnProcessExit`` handler under the hood, so we implement that mechanism once and reuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .core import Action, LaunchContext, LaunchDescriptionEntity

__all__ = [
    "EventHandler",
    "OnProcessExit",
    "OnProcessStart",
    "OnShutdown",
    "ProcessExited",
    "ProcessStarted",
    "ShutdownEvent",
]


@dataclass
class ProcessStarted:
    action: Any
    name: str
    pid: int
    cmd: list[str] = field(default_factory=list)


@dataclass
class ProcessExited:
    action: Any
    name: str
    pid: int
    cmd: list[str]
    returncode: int


@dataclass
class ShutdownEvent:
    reason: str
    due_to_sigint: bool = False


Reaction = None | LaunchDescriptionEntity | list | Callable[[Any, LaunchContext], Any]


def _as_entities(reaction: Reaction, event: Any, context: LaunchContext) -> list[LaunchDescriptionEntity]:
    if reaction is None:
        return []
    if callable(reaction) and not isinstance(reaction, LaunchDescriptionEntity):
        reaction = reaction(event, context)
        if reaction is None:
            return []
    if isinstance(reaction, LaunchDescriptionEntity):
        return [reaction]
    return list(reaction)


class EventHandler:
    """Matches an event type (and optionally the action that produced it) and returns entities to visit."""

    event_type: type = object

    def __init__(self, *, target_action: Action | None = None, reaction: Reaction = None) -> None:
        self.target_action = target_action
        self.reaction = reaction

    def matches(self, event: Any) -> bool:
        if not isinstance(event, self.event_type):
            return False
        return self.target_action is None or getattr(event, "action", None) is self.target_action

    def handle(self, event: Any, context: LaunchContext) -> list[LaunchDescriptionEntity]:
        return _as_entities(self.reaction, event, context)


class OnProcessExit(EventHandler):
    event_type = ProcessExited

    def __init__(self, *, target_action: Action | None = None, on_exit: Reaction = None, **_: Any) -> None:
        super().__init__(target_action=target_action, reaction=on_exit)


class OnProcessStart(EventHandler):
    event_type = ProcessStarted

    def __init__(self, *, target_action: Action | None = None, on_start: Reaction = None, **_: Any) -> None:
        super().__init__(target_action=target_action, reaction=on_start)


class OnShutdown(EventHandler):
    event_type = ShutdownEvent

    def __init__(self, *, on_shutdown: Reaction = None, **_: Any) -> None:
        super().__init__(reaction=on_shutdown)
