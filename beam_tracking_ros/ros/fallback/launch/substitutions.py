"""Substitutions used by our launch files, with the real ``launch.substitutions`` names and signatures."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

from .core import (
    LaunchContext,
    SomeSubstitutionsType,
    Substitution,
    SubstitutionFailure,
    TextSubstitution,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)

__all__ = [
    "EnvironmentVariable",
    "LaunchConfiguration",
    "PathJoinSubstitution",
    "PythonExpression",
    "Substitution",
    "SubstitutionFailure",
    "TextSubstitution",
    "ThisLaunchFile",
    "ThisLaunchFileDir",
]


class LaunchConfiguration(Substitution):
    """Value of a launch argument/configuration; ``default`` is used when it is not set."""

    def __init__(self, variable_name: SomeSubstitutionsType, *, default: Any | None = None) -> None:
        self.variable_name = normalize_to_list_of_substitutions(variable_name)
        self.default = (
            None
            if default is None
            else normalize_to_list_of_substitutions(
                default if isinstance(default, (str, Substitution, list, tuple)) else str(default)
            )
        )

    def perform(self, context: LaunchContext) -> str:
        name = perform_substitutions(context, self.variable_name)
        if name in context.launch_configurations:
            return context.launch_configurations[name]
        if self.default is not None:
            return perform_substitutions(context, self.default)
        raise SubstitutionFailure(f"launch configuration '{name}' does not exist")

    def describe(self) -> str:
        return f"LaunchConfig({''.join(s.describe() for s in self.variable_name)})"


class EnvironmentVariable(Substitution):
    """Value of an environment variable; ``default_value=None`` makes an unset variable an error."""

    def __init__(
        self, name: SomeSubstitutionsType, *, default_value: SomeSubstitutionsType | None = ""
    ) -> None:
        self.name = normalize_to_list_of_substitutions(name)
        self.default_value = (
            None if default_value is None else normalize_to_list_of_substitutions(default_value)
        )

    def perform(self, context: LaunchContext) -> str:
        name = perform_substitutions(context, self.name)
        value = context.environment.get(name)
        if value is not None:
            return value
        if self.default_value is None:
            raise SubstitutionFailure(f"environment variable '{name}' does not exist")
        return perform_substitutions(context, self.default_value)


class PathJoinSubstitution(Substitution):
    """``os.path.join`` of the performed parts; also supports ``PathJoinSubstitution([...]) / 'x'``."""

    def __init__(self, substitutions: Iterable[SomeSubstitutionsType]) -> None:
        self.substitutions = [normalize_to_list_of_substitutions(s) for s in substitutions]

    def perform(self, context: LaunchContext) -> str:
        return os.path.join(*[perform_substitutions(context, s) for s in self.substitutions])

    def __truediv__(self, other: SomeSubstitutionsType) -> PathJoinSubstitution:
        return PathJoinSubstitution([*self.substitutions, other])


class PythonExpression(Substitution):
    """``str(eval(expression))`` with ``math`` available, as in the real launch.

    Launch files are trusted code (they are Python themselves), so eval adds no new risk here.
    """

    def __init__(
        self, expression: SomeSubstitutionsType, python_modules: SomeSubstitutionsType = ("math",)
    ) -> None:
        self.expression = normalize_to_list_of_substitutions(expression)
        self.python_modules = [normalize_to_list_of_substitutions(m) for m in python_modules]

    def perform(self, context: LaunchContext) -> str:
        import importlib

        names: dict[str, Any] = {}
        for mod in self.python_modules:
            name = perform_substitutions(context, mod)
            names[name] = importlib.import_module(name)
            if name == "math":
                names.update(vars(math))
        expr = perform_substitutions(context, self.expression)
        try:
            return str(eval(expr, names))
        except Exception as exc:
            raise SubstitutionFailure(f"PythonExpression {expr!r} failed: {exc}") from exc


class ThisLaunchFileDir(Substitution):
    """Directory of the launch file being visited."""

    def perform(self, context: LaunchContext) -> str:
        d = context.get_locals_as_dict().get("current_launch_file_directory")
        if d is None:
            raise SubstitutionFailure("ThisLaunchFileDir used outside of a launch file")
        return str(d)


class ThisLaunchFile(Substitution):
    """Path of the launch file being visited."""

    def perform(self, context: LaunchContext) -> str:
        p = context.get_locals_as_dict().get("current_launch_file_path")
        if p is None:
            raise SubstitutionFailure("ThisLaunchFile used outside of a launch file")
        return str(p)
