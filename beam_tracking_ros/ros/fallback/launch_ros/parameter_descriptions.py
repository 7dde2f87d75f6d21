"""``ParameterValue`` / ``ParameterFile``: explicit parameter typing, as in launch_ros."""

from __future__ import annotations

from typing import Any

import yaml

from ..launch.core import LaunchContext, SomeSubstitutionsType, Substitution, perform_substitutions

__all__ = ["ParameterFile", "ParameterValue", "evaluate_parameter_value"]


def _from_yaml(text: str) -> Any:
    """Type a performed string the way launch_ros does (yaml rules: '3' -> 3, 'true' -> True)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None or isinstance(value, dict) else value


class ParameterValue:
    """A parameter value with an optional type (``value_type=str`` keeps '42' a string)."""

    def __init__(self, value: Any, *, value_type: Any | None = None) -> None:
        self.value, self.value_type = value, value_type

    def evaluate(self, context: LaunchContext) -> Any:
        v = self.value
        if isinstance(v, Substitution) or (
            isinstance(v, (list, tuple)) and any(isinstance(x, Substitution) for x in v)
        ):
            text = perform_substitutions(context, v)
            if self.value_type is str:
                return text
            v = _from_yaml(text)
        if self.value_type in (int, float, bool, str):
            return self.value_type(v)
        return v


class ParameterFile:
    """A parameters YAML file given explicitly (substitutions inside the file are not supported here)."""

    def __init__(self, param_file: SomeSubstitutionsType, *, allow_substs: bool = False) -> None:
        if allow_substs:
            raise NotImplementedError(
                "ParameterFile(allow_substs=True) is not supported by the fallback launch"
            )
        self.param_file = param_file

    def evaluate(self, context: LaunchContext) -> str:
        return perform_substitutions(context, self.param_file)


def evaluate_parameter_value(value: Any, context: LaunchContext, where: str) -> Any:
    """Evaluate one value of a parameters dict: substitutions performed and typed, nesting kept."""
    if isinstance(value, ParameterValue):
        return value.evaluate(context)
    if isinstance(value, dict):
        return {
            perform_substitutions(context, k): evaluate_parameter_value(v, context, f"{where}.{k}")
            for k, v in value.items()
        }
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _from_yaml(value)
    if isinstance(value, Substitution):
        return _from_yaml(perform_substitutions(context, value))
    if isinstance(value, (list, tuple)):
        if (
            value
            and all(isinstance(x, (str, Substitution)) for x in value)
            and any(isinstance(x, Substitution) for x in value)
        ):
            return _from_yaml(perform_substitutions(context, value))  # a list of substitutions concatenates
        return [evaluate_parameter_value(x, context, where) for x in value]
    raise TypeError(f"parameter '{where}': unsupported value {value!r} of type {type(value).__name__}")
