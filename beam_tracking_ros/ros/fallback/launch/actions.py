"""Actions with the real ``launch.actions`` names and keyword signatures (the subset our launch files use)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .core import (
    Action,
    Condition,
    LaunchContext,
    LaunchDescriptionEntity,
    LaunchError,
    SomeSubstitutionsType,
    Substitution,
    normalize_to_list_of_substitutions,
    perform_substitutions,
)
from .event_handlers import EventHandler, OnProcessExit, ProcessExited
from .launch_description_sources import LaunchDescriptionSource, PythonLaunchDescriptionSource

__all__ = [
    "DeclareLaunchArgument",
    "ExecuteProcess",
    "GroupAction",
    "IncludeLaunchDescription",
    "LogInfo",
    "OpaqueFunction",
    "RegisterEventHandler",
    "SetEnvironmentVariable",
    "SetLaunchConfiguration",
    "Shutdown",
    "TimerAction",
]


def _text_or_none(subs: SomeSubstitutionsType | None, context: LaunchContext) -> str | None:
    return None if subs is None else perform_substitutions(context, subs)


class DeclareLaunchArgument(Action):
    """Declares a launch argument: checks it is given (or has a default) and is one of ``choices``."""

    def __init__(
        self,
        name: str,
        *,
        default_value: SomeSubstitutionsType | None = None,
        description: str | None = None,
        choices: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(name, str) or not name:
            raise ValueError(f"DeclareLaunchArgument: name must be a non-empty str, got {name!r}")
        self.name = name
        self.default_value = (
            None if default_value is None else normalize_to_list_of_substitutions(default_value)
        )
        self.description = description if description is not None else "no description given"
        self.choices = None if choices is None else [str(c) for c in choices]
        if self.choices is not None and isinstance(default_value, str) and default_value not in self.choices:
            raise LaunchError(
                f"default value {default_value!r} of argument '{name}' is not one of {self.choices}"
            )

    def _check_choice(self, value: str) -> None:
        if self.choices is not None and value not in self.choices:
            raise LaunchError(
                f"Argument '{self.name}' provided value '{value}' is not valid. "
                f"Valid options are: {self.choices}"
            )

    def execute(self, context: LaunchContext) -> None:
        if self.name not in context.launch_configurations:
            if self.default_value is None:
                raise LaunchError(
                    f"Required launch argument '{self.name}' (description: '{self.description}') "
                    f"was not provided; pass it as {self.name}:=<value>"
                )
            context.launch_configurations[self.name] = perform_substitutions(context, self.default_value)
        self._check_choice(context.launch_configurations[self.name])
        return None

    def _launch_arguments(self, context: LaunchContext) -> tuple[list[Any], bool]:
        if self.name not in context.launch_configurations and self.default_value is not None:
            with contextlib.suppress(LaunchError):
                context.launch_configurations[self.name] = perform_substitutions(context, self.default_value)
        return [self], True


class SetLaunchConfiguration(Action):
    def __init__(self, name: SomeSubstitutionsType, value: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.value = name, value

    def execute(self, context: LaunchContext) -> None:
        context.launch_configurations[perform_substitutions(context, self.name)] = perform_substitutions(
            context, self.value
        )


class _Scope(Action):
    """Internal push/pop of launch configurations, environment and locals (what scoping means)."""

    def __init__(
        self,
        push: bool,
        forwarding: bool = True,
        locals_: dict[str, Any] | None = None,
        configurations: bool = True,
    ) -> None:
        super().__init__()
        self.push, self.forwarding, self.locals_, self.configurations = (
            push,
            forwarding,
            locals_,
            configurations,
        )

    def execute(self, context: LaunchContext) -> None:
        if self.push:
            if self.configurations:
                context._push_launch_configurations(self.forwarding)
                context._push_environment()
            context._push_locals()
            if self.locals_:
                context.extend_locals(self.locals_)
        else:
            context._pop_locals()
            if self.configurations:
                context._pop_environment()
                context._pop_launch_configurations()


class IncludeLaunchDescription(Action):
    """Includes another launch file, setting ``launch_arguments`` in the current scope first.

    As in the real launch the arguments are not scoped (wrap the include in a GroupAction for that).
    """

    def __init__(
        self,
        launch_description_source: LaunchDescriptionSource | SomeSubstitutionsType,
        *,
        launch_arguments: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(launch_description_source, LaunchDescriptionSource):
            launch_description_source = PythonLaunchDescriptionSource(launch_description_source)
        self.launch_description_source = launch_description_source
        if isinstance(launch_arguments, Mapping):
            launch_arguments = launch_arguments.items()
        self.launch_arguments = [(k, v) for k, v in (launch_arguments or [])]
        for k, v in self.launch_arguments:
            normalize_to_list_of_substitutions(k)
            normalize_to_list_of_substitutions(v)

    def _locals_for(self) -> dict[str, Any]:
        path = self.launch_description_source.location
        if not os.path.isabs(path):
            return {}
        return {"current_launch_file_path": path, "current_launch_file_directory": os.path.dirname(path)}

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity]:
        description = self.launch_description_source.get_launch_description(context)
        values = [
            (perform_substitutions(context, k), perform_substitutions(context, v))
            for k, v in self.launch_arguments
        ]
        context.launch_configurations.update(values)
        return [
            _Scope(True, locals_=self._locals_for(), configurations=False),
            description,
            _Scope(False, configurations=False),
        ]

    def _launch_arguments(self, context: LaunchContext) -> tuple[list[Any], bool]:
        try:
            description = self.launch_description_source.get_launch_description(context)
            passed = {perform_substitutions(context, k) for k, _ in self.launch_arguments}
        except LaunchError:
            return [], False
        context._push_locals()
        context.extend_locals(self._locals_for())
        try:
            found, complete = description._launch_arguments(context)
        finally:
            context._pop_locals()
        return [a for a in found if a.name not in passed], complete


class GroupAction(Action):
    """Visits ``actions``; when ``scoped`` their configuration/namespace/environment changes do not leak."""

    def __init__(
        self,
        actions: Iterable[LaunchDescriptionEntity],
        *,
        scoped: bool = True,
        forwarding: bool = True,
        launch_configurations: Mapping[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.actions = list(actions)
        self.scoped, self.forwarding = scoped, forwarding
        self.launch_configurations = dict(launch_configurations or {})

    def get_sub_entities(self) -> list[LaunchDescriptionEntity]:
        return self.actions

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity]:
        sets: list[LaunchDescriptionEntity] = [
            SetLaunchConfiguration(k, v) for k, v in self.launch_configurations.items()
        ]
        if not self.scoped:
            return [*sets, *self.actions]
        return [_Scope(True, forwarding=self.forwarding), *sets, *self.actions, _Scope(False)]

    def _launch_arguments(self, context: LaunchContext) -> tuple[list[Any], bool]:
        found: list[Any] = []
        complete = True
        for a in self.actions:
            args, ok = a._launch_arguments(context)
            found += args
            complete = complete and ok
        return found, complete


class LogInfo(Action):
    """Prints ``[INFO] [launch.user]: <msg>``."""

    def __init__(self, *, msg: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.msg = normalize_to_list_of_substitutions(msg)

    def execute(self, context: LaunchContext) -> None:
        text = perform_substitutions(context, self.msg)
        if context._service is not None:
            context._service.log("INFO", "launch.user", text)
        else:
            print(f"[INFO] [launch.user]: {text}", flush=True)


class SetEnvironmentVariable(Action):
    """Sets a variable for the rest of the launch (and the processes it starts), scoped by groups."""

    def __init__(self, name: SomeSubstitutionsType, value: SomeSubstitutionsType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.value = name, value

    def execute(self, context: LaunchContext) -> None:
        context.environment[perform_substitutions(context, self.name)] = perform_substitutions(
            context, self.value
        )


class OpaqueFunction(Action):
    """Calls ``function(context, *args, **kwargs)``; the entities it returns are visited next."""

    def __init__(
        self,
        *,
        function: Callable[..., Any],
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **left_over_kwargs: Any,
    ) -> None:
        super().__init__(**left_over_kwargs)
        if not callable(function):
            raise TypeError("OpaqueFunction: function must be callable")
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context: LaunchContext) -> list[LaunchDescriptionEntity] | None:
        result = self.function(context, *self.args, **self.kwargs)
        return None if result is None else list(result)


class RegisterEventHandler(Action):
    def __init__(self, event_handler: EventHandler, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.event_handler = event_handler

    def execute(self, context: LaunchContext) -> None:
        context._service.register_event_handler(self.event_handler, context._snapshot())


class Shutdown(Action):
    """Stops the whole launch. Triggered by a process that exited non-zero while no shutdown was under way,
    it makes the launch fail."""

    def __init__(self, *, reason: SomeSubstitutionsType = "reason not given", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: LaunchContext) -> None:
        event = context.get_locals_as_dict().get("event")
        # Only an exit that causes the shutdown fails the launch: once Ctrl-C (or another Shutdown) is
        # stopping everything, a node that dies of that signal (still importing, before its handler is
        # installed: exit code -2) or of the SIGTERM escalation is expected, not an error.
        failed = (
            isinstance(event, ProcessExited) and event.returncode != 0 and not context._service.shutting_down
        )
        reason = perform_substitutions(context, self.reason)
        if isinstance(event, ProcessExited):
            reason = f"process {event.name} exited with code {event.returncode} ({reason})"
        context._service.request_shutdown(reason, failed=failed)


class TimerAction(Action):
    """Visits ``actions`` after ``period`` seconds (in the scope where the timer was created)."""

    def __init__(
        self,
        *,
        period: float | SomeSubstitutionsType,
        actions: Iterable[LaunchDescriptionEntity],
        cancel_on_shutdown: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.period, self.actions, self.cancel_on_shutdown = period, list(actions), cancel_on_shutdown

    def execute(self, context: LaunchContext) -> None:
        period = (
            self.period
            if isinstance(self.period, (int, float))
            else float(perform_substitutions(context, self.period))
        )
        context._service.schedule(float(period), self.actions, context._snapshot())


@dataclass
class ProcessSpec:
    """Everything the service needs to start and stop one process, after substitutions."""

    cmd: list[str]
    name: str
    cwd: str | None
    env: dict[str, str]
    output: str
    sigterm_timeout: float
    sigkill_timeout: float
    respawn: bool
    respawn_delay: float
    shell: bool = False
    temp_files: list[str] = field(default_factory=list)


def _seconds(value: float | SomeSubstitutionsType, context: LaunchContext, what: str) -> float:
    text = value if isinstance(value, (int, float)) else perform_substitutions(context, value)
    try:
        return float(text)
    except ValueError:
        raise LaunchError(f"{what} must be a number of seconds, got {text!r}") from None


class ExecuteProcess(Action):
    """Starts a process; its output is prefixed with ``[<name>-<n>]``; stopped by SIGINT/SIGTERM/SIGKILL."""

    def __init__(
        self,
        *,
        cmd: Iterable[SomeSubstitutionsType],
        name: SomeSubstitutionsType | None = None,
        cwd: SomeSubstitutionsType | None = None,
        env: Mapping[SomeSubstitutionsType, SomeSubstitutionsType] | None = None,
        additional_env: Mapping[SomeSubstitutionsType, SomeSubstitutionsType] | None = None,
        shell: bool = False,
        sigterm_timeout: float | SomeSubstitutionsType = 5.0,
        sigkill_timeout: float | SomeSubstitutionsType = 5.0,
        emulate_tty: bool = False,
        output: SomeSubstitutionsType = "log",
        prefix: SomeSubstitutionsType | None = None,
        respawn: bool | SomeSubstitutionsType = False,
        respawn_delay: float | None = None,
        on_exit: Any = None,
        log_cmd: bool = False,
        cached_output: bool = False,
        condition: Condition | None = None,
    ) -> None:
        super().__init__(condition=condition)
        if isinstance(cmd, (str, Substitution)):
            cmd = [cmd]
        self.cmd = [normalize_to_list_of_substitutions(c) for c in cmd]
        self.name, self.cwd, self.env, self.additional_env = name, cwd, env, additional_env
        self.shell, self.emulate_tty, self.output, self.prefix = shell, emulate_tty, output, prefix
        self.sigterm_timeout, self.sigkill_timeout = sigterm_timeout, sigkill_timeout
        self.respawn, self.respawn_delay, self.on_exit = respawn, respawn_delay, on_exit
        self.log_cmd = log_cmd

    def _expand_cmd(self, context: LaunchContext, spec_files: list[str]) -> list[str]:
        """The command line; Node overrides this to add ``--ros-args``."""
        return [perform_substitutions(context, c) for c in self.cmd]

    def _default_name(self, cmd: list[str]) -> str:
        return os.path.basename(cmd[0]) if cmd else "process"

    def _prepare(self, context: LaunchContext) -> ProcessSpec:
        temp_files: list[str] = []
        cmd = self._expand_cmd(context, temp_files)
        if self.prefix is not None:
            import shlex

            cmd = shlex.split(perform_substitutions(context, self.prefix)) + cmd
        name = _text_or_none(self.name, context) or self._default_name(cmd)
        if self.env is not None:
            env = {
                perform_substitutions(context, k): perform_substitutions(context, v)
                for k, v in self.env.items()
            }
        else:
            env = dict(context.environment)
        for k, v in (self.additional_env or {}).items():
            env[perform_substitutions(context, k)] = perform_substitutions(context, v)
        env.setdefault("PYTHONUNBUFFERED", "1")
        output = perform_substitutions(context, self.output)
        respawn = (
            self.respawn
            if isinstance(self.respawn, bool)
            else perform_substitutions(context, self.respawn).strip().lower() in ("true", "1")
        )
        return ProcessSpec(
            cmd=cmd,
            name=name,
            cwd=_text_or_none(self.cwd, context),
            env=env,
            output=output,
            sigterm_timeout=_seconds(self.sigterm_timeout, context, "sigterm_timeout"),
            sigkill_timeout=_seconds(self.sigkill_timeout, context, "sigkill_timeout"),
            respawn=respawn,
            respawn_delay=float(self.respawn_delay or 0.0),
            shell=self.shell,
            temp_files=temp_files,
        )

    def execute(self, context: LaunchContext) -> None:
        spec = self._prepare(context)
        service = context._service
        if self.on_exit is not None:
            service.register_event_handler(
                OnProcessExit(target_action=self, on_exit=self.on_exit), context._snapshot()
            )
        service.start_process(self, spec)
