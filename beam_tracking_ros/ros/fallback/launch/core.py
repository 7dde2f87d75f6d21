"""Core types of the mini ``launch``: entities, actions, substitutions, conditions and the launch context.

Why a synchronous design: the real ``launch`` runs an asyncio event loop. Our launch files only need
"visit entities in order, start processes, react to their exit", so entities are visited depth-first and
an action returns the sub-entities to visit next. Scoping (groups, included files) is done with internal
push/pop actions, as the real implementation does.
"""

from __future__ import annotations

import os
import pathlib
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .launch_service import LaunchService


class LaunchError(RuntimeError):
    """A mistake the user must fix in a launch file or on the command line (bad/missing argument...)."""


class SubstitutionFailure(LaunchError):  # noqa: N818 - the real launch's name
    """A substitution cannot be performed (e.g. an undefined launch configuration)."""


class LaunchContext:
    """Launch configurations, locals (current file, current event) and the running service.

    ``environment`` is ``os.environ`` itself, as in the real launch: SetEnvironmentVariable changes what
    later processes inherit; groups save and restore it.
    """

    def __init__(self, *, argv: list[str] | None = None, service: LaunchService | None = None) -> None:
        self.argv = list(argv or [])
        self.launch_configurations: dict[str, str] = {}
        self._locals: dict[str, Any] = {}
        self._service = service
        self._config_stack: list[dict[str, str]] = []
        self._env_stack: list[dict[str, str]] = []
        self._locals_stack: list[dict[str, Any]] = []

    @property
    def environment(self) -> os._Environ[str]:
        return os.environ

    @property
    def locals(self) -> types.SimpleNamespace:
        """Read-only attribute view (``context.locals.current_launch_file_directory``)."""
        return types.SimpleNamespace(**self._locals)

    def get_locals_as_dict(self) -> dict[str, Any]:
        return dict(self._locals)

    def extend_locals(self, new_locals: dict[str, Any]) -> None:
        self._locals.update(new_locals)

    def perform_substitution(self, substitution: Substitution) -> str:
        return substitution.perform(self)

    # Scoping used by GroupAction / IncludeLaunchDescription (mirrors the real private API names).
    def _push_launch_configurations(self, forwarding: bool = True) -> None:
        self._config_stack.append(self.launch_configurations)
        self.launch_configurations = dict(self.launch_configurations) if forwarding else {}

    def _pop_launch_configurations(self) -> None:
        self.launch_configurations = self._config_stack.pop()

    def _push_environment(self) -> None:
        self._env_stack.append(dict(os.environ))

    def _pop_environment(self) -> None:
        saved = self._env_stack.pop()
        os.environ.clear()
        os.environ.update(saved)

    def _push_locals(self) -> None:
        self._locals_stack.append(dict(self._locals))

    def _pop_locals(self) -> None:
        self._locals = self._locals_stack.pop()

    def _snapshot(self) -> tuple[dict[str, str], dict[str, Any]]:
        """State captured for actions that run later (timers, exit handlers) so they see their own scope."""
        return dict(self.launch_configurations), dict(self._locals)

    def _restore(self, snapshot: tuple[dict[str, str], dict[str, Any]]) -> None:
        self.launch_configurations, self._locals = dict(snapshot[0]), dict(snapshot[1])


class LaunchDescriptionEntity:
    """Anything that can appear in a LaunchDescription."""

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        return None

    def _launch_arguments(self, context: LaunchContext) -> tuple[list[Any], bool]:
        """Statically declared launch arguments below this entity and whether the walk was complete."""
        return [], True


class Substitution:
    """A string computed when the launch runs (``perform(context) -> str``)."""

    def perform(self, context: LaunchContext) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return repr(self)


class TextSubstitution(Substitution):
    """Literal text; plain strings are normalized into this."""

    def __init__(self, *, text: str) -> None:
        self.text = str(text)

    def perform(self, context: LaunchContext) -> str:
        return self.text

    def describe(self) -> str:
        return repr(self.text)


SomeSubstitutionsType = str | pathlib.Path | Substitution | Iterable[str | pathlib.Path | Substitution]


def normalize_to_list_of_substitutions(subs: SomeSubstitutionsType) -> list[Substitution]:
    """``'a'`` / ``Substitution`` / iterable of both -> list of substitutions (real launch semantics)."""

    def one(item: Any) -> Substitution:
        if isinstance(item, Substitution):
            return item
        if isinstance(item, (str, pathlib.PurePath)):
            return TextSubstitution(text=str(item))
        raise TypeError(f"expected str or Substitution, got {type(item).__name__}: {item!r}")

    if isinstance(subs, (str, pathlib.PurePath, Substitution)):
        return [one(subs)]
    if isinstance(subs, Iterable):
        return [one(s) for s in subs]
    raise TypeError(f"expected str, Substitution or an iterable of them, got {type(subs).__name__}: {subs!r}")


def perform_substitutions(context: LaunchContext, subs: SomeSubstitutionsType) -> str:
    """Perform and concatenate, the way every action evaluates a SomeSubstitutionsType argument."""
    return "".join(s.perform(context) for s in normalize_to_list_of_substitutions(subs))


def is_substitution_like(value: Any) -> bool:
    """True for a Substitution or a non-string iterable made only of str/Substitution."""
    if isinstance(value, Substitution):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(v, (str, Substitution)) for v in value) and any(
            isinstance(v, Substitution) for v in value
        )
    return False


class Condition:
    """Decides whether an action is visited; subclasses implement ``_evaluate``."""

    def __init__(self, *, predicate: Callable[[LaunchContext], bool] | None = None) -> None:
        self._predicate = predicate

    def evaluate(self, context: LaunchContext) -> bool:
        if self._predicate is None:
            raise NotImplementedError
        return bool(self._predicate(context))


class Action(LaunchDescriptionEntity):
    """Base of all actions: an optional ``condition`` and ``execute(context)`` returning sub-entities."""

    def __init__(self, *, condition: Condition | None = None) -> None:
        self._condition = condition

    @property
    def condition(self) -> Condition | None:
        return self._condition

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        if self._condition is not None and not self._condition.evaluate(context):
            return None
        return self.execute(context)

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        return None


class LaunchDescription(LaunchDescriptionEntity):
    """An ordered list of entities, what ``generate_launch_description()`` returns."""

    def __init__(
        self,
        initial_entities: Iterable[LaunchDescriptionEntity] | None = None,
        *,
        deprecated_reason: str | None = None,
    ) -> None:
        self._entities = list(initial_entities or [])
        for e in self._entities:
            _check_entity(e)
        self.deprecated_reason = deprecated_reason

    @property
    def entities(self) -> list[LaunchDescriptionEntity]:
        return self._entities

    def add_action(self, action: Action) -> None:
        self.add_entity(action)

    def add_entity(self, entity: LaunchDescriptionEntity) -> None:
        _check_entity(entity)
        self._entities.append(entity)

    def visit(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        return list(self._entities)

    def _launch_arguments(self, context: LaunchContext) -> tuple[list[Any], bool]:
        found: list[Any] = []
        complete = True
        for e in self._entities:
            args, ok = e._launch_arguments(context)
            found.extend(a for a in args if all(a.name != f.name for f in found))
            complete = complete and ok
        return found, complete

    def get_launch_arguments(self, conditional_inclusion: bool = False) -> list[Any]:
        """DeclareLaunchArgument actions of this description and of files it includes (real API)."""
        return self._launch_arguments(LaunchContext())[0]


def _check_entity(entity: Any) -> None:
    if not isinstance(entity, LaunchDescriptionEntity):
        raise TypeError(f"LaunchDescription entities must be actions or descriptions, got {entity!r}")
