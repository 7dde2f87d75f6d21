"""``Node``, ``PushRosNamespace`` and ``SetParameter`` with the real launch_ros keywords.

A Node is an ExecuteProcess whose command line is built like launch_ros builds it:
``<exe> [arguments] --ros-args -r __node:=<name> -r __ns:=<ns> --params-file <f>...
-r from:=to [ros_arguments]``;
dict parameters go to a temporary YAML file in the ``/**: ros__parameters:`` form.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

import yaml

from .. import PackageNotFoundError, find_executable
from ..launch.actions import ExecuteProcess
from ..launch.core import (
    Action,
    LaunchContext,
    LaunchError,
    SomeSubstitutionsType,
    perform_substitutions,
)
from .parameter_descriptions import ParameterFile, evaluate_parameter_value

__all__ = ["Node", "PushRosNamespace", "SetParameter"]

_GLOBAL_PARAMS = "global_params"  # launch configuration key, as in launch_ros


def _absolute(ns: str) -> str:
    return ns if ns.startswith("/") else "/" + ns


class Node(ExecuteProcess):
    """Starts ``<prefix>/lib/<package>/<executable>`` as a ROS node (see module docstring)."""

    def __init__(
        self,
        *,
        executable: SomeSubstitutionsType,
        package: SomeSubstitutionsType | None = None,
        name: SomeSubstitutionsType | None = None,
        namespace: SomeSubstitutionsType | None = None,
        exec_name: SomeSubstitutionsType | None = None,
        parameters: Iterable[Any] | None = None,
        remappings: Iterable[tuple[SomeSubstitutionsType, SomeSubstitutionsType]] | None = None,
        ros_arguments: Iterable[SomeSubstitutionsType] | None = None,
        arguments: Iterable[SomeSubstitutionsType] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(cmd=[executable], name=exec_name, **kwargs)
        if parameters is not None and not isinstance(parameters, (list, tuple)):
            raise TypeError("Node: parameters must be a list of YAML file paths and/or dicts")
        self.package, self.executable = package, executable
        self.node_name, self.node_namespace = name, namespace
        self.parameters = list(parameters or [])
        self.remappings = [tuple(r) for r in (remappings or [])]
        self.ros_arguments = list(ros_arguments or [])
        self.arguments = list(arguments or [])

    def _namespace(self, context: LaunchContext) -> str | None:
        """Relative namespaces are prefixed with the pushed ``ros_namespace`` (PushRosNamespace)."""
        ns = None if self.node_namespace is None else perform_substitutions(context, self.node_namespace)
        base = context.launch_configurations.get("ros_namespace")
        if base and (ns is None or not ns.startswith("/")):
            ns = base.rstrip("/") + ("/" + ns if ns else "")
        return None if ns is None else _absolute(ns)

    def _param_args(self, entry: Any, context: LaunchContext, temp_files: list[str]) -> list[str]:
        if isinstance(entry, dict):
            params = evaluate_parameter_value(entry, context, "parameters")
            with tempfile.NamedTemporaryFile("w", prefix="launch_params_", suffix=".yaml", delete=False) as f:
                yaml.safe_dump({"/**": {"ros__parameters": params}}, f, default_flow_style=False)
            temp_files.append(f.name)
            return ["--params-file", f.name]
        path = (
            entry.evaluate(context)
            if isinstance(entry, ParameterFile)
            else perform_substitutions(context, entry)
        )
        if not os.path.isfile(path):
            raise LaunchError(f"parameters file '{path}' of node '{self.executable}' does not exist")
        return ["--params-file", path]

    def _expand_cmd(self, context: LaunchContext, temp_files: list[str]) -> list[str]:
        exe = perform_substitutions(context, self.executable)
        if self.package is not None:
            try:
                path = str(find_executable(perform_substitutions(context, self.package), exe))
            except PackageNotFoundError as exc:
                raise LaunchError(str(exc)) from None
        else:
            path = shutil.which(exe) or exe
        cmd = [path, *[perform_substitutions(context, a) for a in self.arguments]]
        ros: list[str] = []
        if self.node_name is not None:
            ros += ["-r", f"__node:={perform_substitutions(context, self.node_name)}"]
        ns = self._namespace(context)
        if ns is not None:
            ros += ["-r", f"__ns:={ns}"]
        global_params = context.launch_configurations.get(_GLOBAL_PARAMS)
        for entry in ([dict(global_params)] if global_params else []) + self.parameters:
            ros += self._param_args(entry, context, temp_files)
        for src, dst in self.remappings:
            ros += ["-r", f"{perform_substitutions(context, src)}:={perform_substitutions(context, dst)}"]
        ros += [perform_substitutions(context, a) for a in self.ros_arguments]
        return cmd + (["--ros-args", *ros] if ros else [])

    def _default_name(self, cmd: list[str]) -> str:
        return os.path.basename(cmd[0])


class PushRosNamespace(Action):
    """Prefixes the namespace of the nodes that follow (scoped by an enclosing GroupAction)."""

    def __init__(self, namespace: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace

    def execute(self, context: LaunchContext) -> None:
        ns = perform_substitutions(context, self.namespace)
        if not ns.startswith("/"):
            prev = context.launch_configurations.get("ros_namespace", "")
            ns = prev.rstrip("/") + "/" + ns
        context.launch_configurations["ros_namespace"] = ns.rstrip("/") or "/"


class SetParameter(Action):
    """Sets a parameter for every node started after it in the same scope."""

    def __init__(self, name: SomeSubstitutionsType, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.value = name, value

    def execute(self, context: LaunchContext) -> None:
        name = perform_substitutions(context, self.name)
        value = evaluate_parameter_value(self.value, context, name)
        params = dict(context.launch_configurations.get(_GLOBAL_PARAMS) or {})  # type: ignore[arg-type]
        params[name] = value
        context.launch_configurations[_GLOBAL_PARAMS] = params  # type: ignore[assignment]
