"""The package's minimal ``ros2`` command, installed by the bootstrap only where no real ``ros2`` exists.

Why: ``launch``, ``launch_ros`` and ``ros2cli`` are not installable from PyPI, yet users type
``ros2 launch beam_tracking_ros carla_bridge.launch.py``. Supported: ``launch``, ``run``, ``topic list|echo``,
``pkg prefix|executables|list``. ``import launch`` / ``import launch_ros`` inside launch files resolve to the
mini implementations only inside this process and only when the real packages are not importable.

Run as ``python -m beam_tracking_ros.ros.fallback.ros2cli <command> ...``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import (
    PackageNotFoundError,
    fallbacks_forced,
    find_executable,
    get_package_prefix,
    get_package_share_directory,
    list_executables,
    list_packages,
    record_implementation,
)

_ALIASES = {"launch": __package__ + ".launch", "launch_ros": __package__ + ".launch_ros"}


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``launch[.x]`` / ``launch_ros[.x]`` the fallback modules (one module object per name)."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        for alias, real in _ALIASES.items():
            if fullname == alias or fullname.startswith(alias + "."):
                target_name = real + fullname[len(alias) :]
                if importlib.util.find_spec(target_name) is None:
                    return None
                return importlib.util.spec_from_loader(fullname, self, origin=target_name)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        assert spec.origin is not None
        return importlib.import_module(spec.origin)

    def exec_module(self, module: ModuleType) -> None:
        return None


def real_launch_available() -> bool:
    """True when the real ``launch`` and ``launch_ros`` are importable (then they are always used).

    A namespace package does not count: a checkout's ``launch/`` folder of launch files on sys.path
    would otherwise pass for the ``launch`` package and leave the launch files without their API.
    False as well under ``BEAM_TRACKING_ROS_FALLBACKS=force`` (the suite's fallback mode).
    """
    if fallbacks_forced():
        return False
    for name in _ALIASES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "namespace"):
            return False
    return True


def install_launch_aliases() -> bool:
    """Alias the fallback packages to ``launch``/``launch_ros`` unless the real ones exist (True: aliased)."""
    if real_launch_available():
        return False
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
    return True


# ---- ros2 launch -----------------------------------------------------------------------------------
def find_launch_file(package: str, file_name: str) -> Path:
    """``share/<pkg>/launch/<file>``, else a unique file of that name anywhere under ``share/<pkg>``."""
    share = get_package_share_directory(package)
    direct = share / "launch" / file_name
    if direct.is_file():
        return direct
    matches = sorted(p for p in share.rglob(file_name) if p.is_file()) if share.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LookupError(
            f"file '{file_name}' found more than once in package '{package}': " + ", ".join(map(str, matches))
        )
    available = sorted(p.name for p in share.rglob("*.launch.py")) if share.is_dir() else []
    raise LookupError(
        f"file '{file_name}' was not found in the share directory of package '{package}' ({share}); "
        f"launch files there: {', '.join(available) if available else 'none'}"
    )


def parse_launch_arguments(items: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"malformed launch argument '{item}', expected format '<name>:=<value>'")
        out.append((name, value))
    return out


def _describe_arguments(declared: Sequence[Any], perform: Any) -> str:
    if not declared:
        return "No arguments."
    lines = ["Arguments (pass arguments as '<name>:=<value>'):"]
    for arg in declared:
        lines += ["", f"    '{arg.name}':", f"        {arg.description}"]
        if arg.choices:
            lines.append(f"        Valid choices are: {arg.choices}")
        if arg.default_value is None:
            lines.append("        (required)")
        else:
            lines.append(f"        (default: {perform(arg.default_value)})")
    return "\n".join(lines)


def cmd_launch(args: argparse.Namespace) -> int:
    rest = list(args.launch_arguments)
    try:
        if os.path.isfile(args.package_name) and (
            args.launch_file_name is None or ":=" in args.launch_file_name
        ):
            path = Path(args.package_name).resolve()
            rest = ([args.launch_file_name] if args.launch_file_name else []) + rest
        elif args.launch_file_name is None:
            raise LookupError(
                f"'{args.package_name}' is not a launch file; "
                "usage: ros2 launch <package> <file> [name:=value ...] or ros2 launch <path>"
            )
        else:
            path = find_launch_file(args.package_name, args.launch_file_name)
        given = parse_launch_arguments(rest)
    except (LookupError, ValueError) as exc:
        print(f"ros2 launch: error: {exc}", file=sys.stderr)
        return 2
    using_fallback = install_launch_aliases()
    record_implementation("launch", "fallback" if using_fallback else "upstream")
    launch = importlib.import_module("launch")
    importlib.import_module("launch.actions")
    source = launch.launch_description_sources.PythonLaunchDescriptionSource(str(path))
    try:
        description = source.try_get_launch_description_without_context()
    except Exception as exc:
        if not isinstance(exc, getattr(launch, "LaunchError", ())):
            traceback.print_exc()
        print(f"[ERROR] [launch]: Caught exception when trying to load file '{path}': {exc}", file=sys.stderr)
        return 1
    if using_fallback:
        ctx = launch.LaunchContext()
        ctx.launch_configurations.update(given)
        ctx.extend_locals(
            {"current_launch_file_path": str(path), "current_launch_file_directory": str(path.parent)}
        )
        try:
            declared, complete = description._launch_arguments(ctx)
        except Exception:
            declared, complete = [], False
        if args.show_args:
            print(_describe_arguments(declared, lambda subs: "".join(s.perform(ctx) for s in subs)))
            return 0
        unknown = [name for name, _ in given if all(a.name != name for a in declared)]
        if unknown and complete:
            known = ", ".join(f"'{a.name}'" for a in declared) or "none"
            print(
                f"ros2 launch: error: unknown launch argument(s) {', '.join(repr(u) for u in unknown)} for "
                f"{path.name}; declared arguments: {known} (see 'ros2 launch ... --show-args')",
                file=sys.stderr,
            )
            return 2
    elif args.show_args:
        for arg in description.get_launch_arguments():
            print(f"'{arg.name}': {arg.description}")
        return 0
    service = launch.LaunchService(argv=rest, noninteractive=args.noninteractive, debug=args.debug)
    service.include_launch_description(
        launch.actions.IncludeLaunchDescription(source, launch_arguments=given)
    )
    return int(service.run())


# ---- ros2 run / pkg --------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    try:
        exe = find_executable(args.package_name, args.executable_name)
    except PackageNotFoundError as exc:
        print(f"ros2 run: error: {exc}", file=sys.stderr)
        return 1
    cmd = (shlex.split(args.prefix) if args.prefix else []) + [str(exe), *args.argv]
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)
    return 1  # not reached


def cmd_pkg(args: argparse.Namespace) -> int:
    try:
        if args.pkg_command == "prefix":
            print(
                get_package_share_directory(args.package_name)
                if args.share
                else get_package_prefix(args.package_name)
            )
        elif args.pkg_command == "executables":
            packages = [args.package_name] if args.package_name else sorted(list_packages())
            for pkg in packages:
                for exe in list_executables(pkg):
                    print(f"{pkg} {exe}")
        else:
            for pkg in sorted(list_packages()):
                print(pkg)
    except PackageNotFoundError as exc:
        print(f"ros2 pkg: error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_topic(args: argparse.Namespace) -> int:
    """``topic list`` / ``topic echo``; rclpy is imported here only, so launch/run work without it."""
    try:
        import rclpy
    except ImportError as exc:
        print(f"ros2 topic: error: rclpy is not importable ({exc}); source env.sh first", file=sys.stderr)
        return 1
    rclpy.init(args=[])
    node = rclpy.create_node(f"_ros2cli_{os.getpid()}")
    try:
        return _topic_list(node, args) if args.topic_command == "list" else _topic_echo(node, args)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        if type(exc).__name__ == "ExternalShutdownException":
            return 0
        raise
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _spin_for(node: Any, seconds: float, until: Any = None) -> None:
    import rclpy

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until()):
        rclpy.spin_once(node, timeout_sec=min(0.1, max(0.0, deadline - time.monotonic())))


def _is_hidden(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("/"))


_SETTLE_S = 0.5  # the graph must stay unchanged this long before it is listed
_MAX_EXTRA_S = 5.0  # beyond --spin-time, never wait longer than this for it to settle


def _discover(node: Any, spin_time: float) -> list[tuple[str, list[str]]]:
    """The topics once discovery has settled: at least ``spin_time``, then until no change for 0.5 s.

    Why: the real ``ros2 topic list`` asks the ros2 daemon, whose graph is already complete; a direct node
    sees participants trickle in, and on a busy machine a fixed wait once listed nothing. Waiting for the
    graph to stop changing (bounded) gives the daemon's answer without its process.
    """
    _spin_for(node, spin_time)
    deadline = time.monotonic() + _MAX_EXTRA_S
    seen = sorted(node.get_topic_names_and_types())
    stable_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable_since < _SETTLE_S:
        _spin_for(node, 0.1)
        now = sorted(node.get_topic_names_and_types())
        if now != seen:
            seen, stable_since = now, time.monotonic()
    return seen


def _topic_list(node: Any, args: argparse.Namespace) -> int:
    for name, types in _discover(node, args.spin_time):
        if args.include_hidden_topics or not _is_hidden(name):
            print(f"{name} [{', '.join(types)}]" if args.show_types else name)
    return 0


def import_message_type(type_name: str) -> Any:
    """``pkg/msg/Type`` (or ``pkg/Type``) -> the Python message class, via ``pkg.msg``."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"invalid message type '{type_name}', expected e.g. std_msgs/msg/String")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type '{type_name}' cannot be imported: {exc}") from None


def _compatible_qos(node: Any, topic: str, args: argparse.Namespace) -> Any:
    """Match the publishers (as ros2 topic echo does): reliable/transient-local only if all of them are."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    _spin_for(node, args.spin_time, until=lambda: bool(node.get_publishers_info_by_topic(topic)))
    pubs = [p.qos_profile for p in node.get_publishers_info_by_topic(topic)]
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
    durable = bool(pubs) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
    qos = QoSProfile(depth=args.qos_depth)
    qos.reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    qos.durability = DurabilityPolicy.TRANSIENT_LOCAL if durable else DurabilityPolicy.VOLATILE
    if args.qos_reliability:
        qos.reliability = ReliabilityPolicy[args.qos_reliability.upper()]
    if args.qos_durability:
        qos.durability = DurabilityPolicy[args.qos_durability.upper()]
    return qos


def message_to_plain(value: Any, truncate: int | None, no_arr: bool = False, no_str: bool = False) -> Any:
    """Message -> nested dicts/lists for YAML, recursing over ``get_fields_and_field_types()``."""
    if hasattr(value, "get_fields_and_field_types"):
        return {
            f: message_to_plain(getattr(value, f), truncate, no_arr, no_str)
            for f in value.get_fields_and_field_types()
        }
    if isinstance(value, str):
        if no_str:
            return f"<string length: {len(value)}>"
        return value if truncate is None or len(value) <= truncate else value[:truncate] + "..."
    if isinstance(value, (bytes, bytearray)):
        value = list(value)
        if len(value) == 1:
            return value[0]
    if hasattr(value, "tolist") and not hasattr(value, "__len__"):  # numpy scalar
        return value.tolist()
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and hasattr(value, "__getitem__")):
        if no_arr:
            return f"<sequence length: {len(value)}>"
        shown = value if truncate is None else value[:truncate]
        items = [message_to_plain(v, truncate, no_arr, no_str) for v in shown]
        return items + (["..."] if truncate is not None and len(value) > truncate else [])
    if hasattr(value, "item"):
        return value.item()
    return value


def _topic_echo(node: Any, args: argparse.Namespace) -> int:
    import rclpy
    import yaml

    topic = args.topic_name if args.topic_name.startswith("/") else "/" + args.topic_name
    type_name = args.message_type
    if type_name is None:

        def types_of() -> list[str]:
            return dict(node.get_topic_names_and_types()).get(topic, [])

        _spin_for(node, args.spin_time, until=lambda: bool(types_of()))
        types = types_of()
        if len(types) != 1:
            print(
                f"ros2 topic echo: error: could not determine the type of '{topic}' "
                f"({'not published' if not types else 'several types: ' + ', '.join(types)}); "
                "pass it, e.g. ros2 topic echo /topic std_msgs/msg/String",
                file=sys.stderr,
            )
            return 1
        type_name = types[0]
    try:
        msg_class = import_message_type(type_name)
    except ValueError as exc:
        print(f"ros2 topic echo: error: {exc}", file=sys.stderr)
        return 1
    truncate = None if args.full_length else args.truncate_length
    received: list[int] = []

    def on_message(msg: Any) -> None:
        value: Any = msg
        if args.field:
            for part in args.field.split("."):
                if not hasattr(value, part):
                    raise SystemExit(f"ros2 topic echo: error: invalid field '{args.field}' for {type_name}")
                value = getattr(value, part)
        plain = message_to_plain(value, truncate, args.no_arr, args.no_str)
        text = yaml.safe_dump(
            plain, default_flow_style=False, sort_keys=False, width=10**9, allow_unicode=True
        )
        if text.endswith("\n...\n") or text == "...\n":  # YAML's end-of-document marker after a scalar
            text = text[:-4]
        sys.stdout.write(text + "---\n")
        sys.stdout.flush()
        received.append(1)

    node.create_subscription(msg_class, topic, on_message, _compatible_qos(node, topic, args))
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while rclpy.ok() and not (args.once and received):
        if deadline is not None and time.monotonic() > deadline:
            print(f"ros2 topic echo: no message on '{topic}' within {args.timeout} s", file=sys.stderr)
            return 1
        rclpy.spin_once(node, timeout_sec=0.1)
    return 0


# ---- entry point -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ros2",
        description="Minimal ros2 command of beam_tracking_ros (fallback used where ROS 2's own "
        "ros2cli is not installed): launch, run, topic list/echo, pkg prefix/executables/list.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("launch", help="run a launch file: ros2 launch <package> <file> [name:=value ...]")
    p.add_argument("package_name", help="package name, or the path of a launch file")
    p.add_argument("launch_file_name", nargs="?", help="launch file name within the package")
    p.add_argument("launch_arguments", nargs="*", help="arguments as '<name>:=<value>'")
    p.add_argument(
        "-s",
        "--show-args",
        "--show-arguments",
        action="store_true",
        dest="show_args",
        help="show the launch file's arguments and exit",
    )
    p.add_argument("-d", "--debug", action="store_true", help="more output")
    p.add_argument(
        "-n",
        "--noninteractive",
        action="store_true",
        help="no terminal: forward a SIGINT that reaches the launcher alone to every process",
    )
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("run", help="run an executable of a package: ros2 run <package> <executable> [args]")
    p.add_argument("--prefix", help="prefix command, e.g. 'gdb -ex run --args'")
    p.add_argument("package_name")
    p.add_argument("executable_name")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="arguments passed to the executable")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("pkg", help="package information: prefix, executables, list")
    psub = p.add_subparsers(dest="pkg_command", metavar="<pkg command>", required=True)
    q = psub.add_parser("prefix", help="install prefix of a package")
    q.add_argument("package_name")
    q.add_argument("--share", action="store_true", help="print the share directory instead")
    q = psub.add_parser("executables", help="executables of a package (or of all packages)")
    q.add_argument("package_name", nargs="?")
    psub.add_parser("list", help="all packages in AMENT_PREFIX_PATH")
    p.set_defaults(func=cmd_pkg)

    p = sub.add_parser("topic", help="topics: list, echo (needs rclpy)")
    tsub = p.add_subparsers(dest="topic_command", metavar="<topic command>", required=True)
    q = tsub.add_parser("list", help="list the topics in the ROS graph")
    q.add_argument("-t", "--show-types", action="store_true", help="also show the message types")
    q.add_argument("-a", "--include-hidden-topics", action="store_true")
    q.add_argument("--spin-time", type=float, default=1.0,
                   help="seconds to wait for discovery at least (default 1.0); the list is printed once the "
                        "graph has not changed for 0.5 s, at most 5 s later")
    q.add_argument("--no-daemon", action="store_true",
                   help="accepted for scripts written for ros2cli; this command never uses a daemon")
    q = tsub.add_parser("echo", help="print the messages of a topic as YAML")
    q.add_argument("topic_name")
    q.add_argument("message_type", nargs="?", help="e.g. std_msgs/msg/String (default: from the graph)")
    q.add_argument("--once", action="store_true", help="print one message and exit")
    q.add_argument("--qos-reliability", choices=["system_default", "reliable", "best_effort"])
    q.add_argument("--qos-durability", choices=["system_default", "volatile", "transient_local"])
    q.add_argument("--qos-depth", type=int, default=10)
    q.add_argument("--field", help="print only this field, e.g. 'header.stamp'")
    q.add_argument("--no-arr", action="store_true", help="do not print arrays' contents")
    q.add_argument("--no-str", action="store_true", help="do not print strings' contents")
    q.add_argument("--truncate-length", "-l", type=int, default=128, help="longest array/string shown")
    q.add_argument("--full-length", "-f", action="store_true", help="never truncate arrays/strings")
    q.add_argument("--spin-time", type=float, default=5.0, help="seconds to wait for the topic's type")
    q.add_argument("--timeout", type=float, help="with --once: give up after this many seconds")
    p.set_defaults(func=cmd_topic)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if argv is None and len(sys.argv) <= 1 else 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
