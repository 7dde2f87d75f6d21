"""Where an included LaunchDescription comes from: a Python launch file (the only format we support)."""

from __future__ import annotations

import importlib.util
import itertools
import os

from .core import (
    LaunchContext,
    LaunchDescription,
    LaunchError,
    SomeSubstitutionsType,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)

__all__ = [
    "AnyLaunchDescriptionSource",
    "LaunchDescriptionSource",
    "PythonLaunchDescriptionSource",
    "load_python_launch_file",
]

_counter = itertools.count()


def load_python_launch_file(path: str) -> LaunchDescription:
    """Import the file under a unique module name and call its ``generate_launch_description()``."""
    if not os.path.isfile(path):
        raise LaunchError(f"launch file '{path}' does not exist")
    spec = importlib.util.spec_from_file_location(f"_launch_file_{next(_counter)}", path)
    if spec is None or spec.loader is None:
        raise LaunchError(f"cannot load launch file '{path}'")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generate = getattr(module, "generate_launch_description", None)
    if not callable(generate):
        raise LaunchError(f"launch file '{path}' has no generate_launch_description() function")
    description = generate()
    if not isinstance(description, LaunchDescription):
        raise LaunchError(
            f"generate_launch_description() of '{path}' returned {type(description).__name__}, "
            "not a LaunchDescription"
        )
    return description


class LaunchDescriptionSource:
    """An already built description (``location`` is only for messages)."""

    def __init__(
        self,
        launch_description: LaunchDescription | None = None,
        location: str = "<object>",
        method: str = "object",
    ) -> None:
        self._description = launch_description
        self._location = location
        self.method = method

    @property
    def location(self) -> str:
        return self._location

    def try_get_launch_description_without_context(self) -> LaunchDescription | None:
        return self._description

    def get_launch_description(self, context: LaunchContext) -> LaunchDescription:
        if self._description is None:
            raise LaunchError("launch description source has no description")
        return self._description


class PythonLaunchDescriptionSource(LaunchDescriptionSource):
    """A ``*.launch.py`` file; the path may contain substitutions. The loaded description is cached."""

    def __init__(self, launch_file_path: SomeSubstitutionsType) -> None:
        super().__init__(None, "<unresolved>", "interpreted python launch file")
        self._path_subs = normalize_to_list_of_substitutions(launch_file_path)
        self._path: str | None = None

    @property
    def location(self) -> str:
        return self._path or self._location

    def resolve_path(self, context: LaunchContext) -> str:
        if self._path is None:
            self._path = os.path.abspath(perform_substitutions(context, self._path_subs))
        return self._path

    def try_get_launch_description_without_context(self) -> LaunchDescription | None:
        if self._description is None:
            try:
                self.resolve_path(LaunchContext())
            except LaunchError:
                return None
            self._description = load_python_launch_file(self.location)
        return self._description

    def get_launch_description(self, context: LaunchContext) -> LaunchDescription:
        if self._description is None:
            self._description = load_python_launch_file(self.resolve_path(context))
        return self._description


AnyLaunchDescriptionSource = PythonLaunchDescriptionSource
