"""``FindPackageShare`` and friends, resolved through the ament resource index."""

from __future__ import annotations

from ... import fallback
from ..launch.core import (
    LaunchContext,
    LaunchError,
    SomeSubstitutionsType,
    Substitution,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)

__all__ = ["ExecutableInPackage", "FindPackagePrefix", "FindPackageShare"]


class FindPackagePrefix(Substitution):
    """Install prefix of a package (``ros2 pkg prefix``)."""

    def __init__(self, package: SomeSubstitutionsType) -> None:
        self.package = normalize_to_list_of_substitutions(package)

    def find(self, package_name: str) -> str:
        try:
            return str(fallback.get_package_prefix(package_name))
        except fallback.PackageNotFoundError as exc:
            raise LaunchError(str(exc)) from None

    def perform(self, context: LaunchContext) -> str:
        return self.find(perform_substitutions(context, self.package))


class FindPackageShare(FindPackagePrefix):
    """``<prefix>/share/<package>``: where a package's launch/, config/ and models/ are installed."""

    def find(self, package_name: str) -> str:
        return str(super().find(package_name) + "/share/" + package_name)


class ExecutableInPackage(Substitution):
    """Path of ``<prefix>/lib/<package>/<executable>``; the error lists the package's executables."""

    def __init__(self, executable: SomeSubstitutionsType, package: SomeSubstitutionsType) -> None:
        self.executable = normalize_to_list_of_substitutions(executable)
        self.package = normalize_to_list_of_substitutions(package)

    def perform(self, context: LaunchContext) -> str:
        try:
            return str(
                fallback.find_executable(
                    perform_substitutions(context, self.package),
                    perform_substitutions(context, self.executable),
                )
            )
        except fallback.PackageNotFoundError as exc:
            raise LaunchError(str(exc)) from None
