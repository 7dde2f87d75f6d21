"""Conditions (``IfCondition`` etc.) with the real predicate rules: only true/false/1/0 are accepted."""

from __future__ import annotations

from .core import (
    Condition,
    LaunchContext,
    LaunchError,
    SomeSubstitutionsType,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)

__all__ = ["IfCondition", "LaunchConfigurationEquals", "LaunchConfigurationNotEquals", "UnlessCondition"]


def evaluate_condition_expression(context: LaunchContext, expression: SomeSubstitutionsType) -> bool:
    """Strict boolean parsing: a typo like 'ture' must be an error, not silently false."""
    text = perform_substitutions(context, expression).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise LaunchError(f"invalid condition expression {text!r}: expected one of true, false, 1, 0")


class IfCondition(Condition):
    def __init__(self, predicate_expression: SomeSubstitutionsType) -> None:
        expr = normalize_to_list_of_substitutions(predicate_expression)
        super().__init__(predicate=lambda ctx: evaluate_condition_expression(ctx, expr))


class UnlessCondition(Condition):
    def __init__(self, predicate_expression: SomeSubstitutionsType) -> None:
        expr = normalize_to_list_of_substitutions(predicate_expression)
        super().__init__(predicate=lambda ctx: not evaluate_condition_expression(ctx, expr))


class LaunchConfigurationEquals(Condition):
    """True when the configuration equals ``expected_value`` (None means: not set)."""

    def __init__(self, launch_configuration_name: str, expected_value: SomeSubstitutionsType | None) -> None:
        self.name = launch_configuration_name
        self.expected = None if expected_value is None else normalize_to_list_of_substitutions(expected_value)
        super().__init__(predicate=self._equals)

    def _equals(self, ctx: LaunchContext) -> bool:
        value = ctx.launch_configurations.get(self.name)
        if self.expected is None:
            return value is None
        return value == perform_substitutions(ctx, self.expected)


class LaunchConfigurationNotEquals(LaunchConfigurationEquals):
    def evaluate(self, context: LaunchContext) -> bool:
        return not super().evaluate(context)
