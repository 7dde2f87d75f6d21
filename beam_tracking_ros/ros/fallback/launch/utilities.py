"""``launch.utilities`` helpers that OpaqueFunctions commonly call."""

from .core import is_substitution_like, normalize_to_list_of_substitutions, perform_substitutions

__all__ = ["is_substitution_like", "normalize_to_list_of_substitutions", "perform_substitutions"]
