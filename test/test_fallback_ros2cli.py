"""Tests of the fallback ``ros2 run``, ``ros2 pkg`` and (with rclpy, over real Fast DDS) ``ros2 topic``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ros2_fallback"
_spec = importlib.util.spec_from_file_location("ros2_fallback_prefix_tools", FIXTURES / "prefix_tools.py")
assert _spec is not None and _spec.loader is not None
prefix_tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prefix_tools)

ROS2 = [sys.executable, "-m", "beam_tracking_ros.ros.fallback.ros2cli"]
PKG = prefix_tools.PKG


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    executables = dict(prefix_tools.DEFAULT_EXECUTABLES, ros_talker=FIXTURES / "ros_talker.py")
    return prefix_tools.build_prefix(tmp_path / "install", executables=executables)


@pytest.fixture
def env(prefix: Path, tmp_path: Path) -> dict[str, str]:
    env = prefix_tools.fallback_env(prefix, tmp_path / "log")
    env["ROS_DOMAIN_ID"] = os.environ["ROS_DOMAIN_ID"]  # the session's own (conftest): runs never hear each other
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


def ros2(args: list[str], env: dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ROS2 + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_run_execs_the_package_executable_with_its_arguments(env: dict[str, str]) -> None:
    result = ros2(["run", PKG, "failer", "--ros-args", "-p", "exit_code:=5", "-p", "fail_after:=0"], env)
    assert result.returncode == 5  # exec: the executable's own exit code
    assert '"params": {"exit_code": 5, "fail_after": 0}' in result.stdout


def test_run_unknown_executable_lists_available(env: dict[str, str]) -> None:
    result = ros2(["run", PKG, "nope"], env)
    assert result.returncode == 1
    assert "available executables: consumer, failer, producer, ros_talker, stubborn" in result.stderr
    result = ros2(["run", "no_such_pkg", "x"], env)
    assert result.returncode == 1 and "package 'no_such_pkg' not found" in result.stderr


def test_pkg_prefix_executables_list_and_help(env: dict[str, str], prefix: Path) -> None:
    assert ros2(["pkg", "prefix", PKG], env).stdout.strip() == str(prefix)
    assert ros2(["pkg", "prefix", "--share", PKG], env).stdout.strip() == str(prefix / "share" / PKG)
    assert f"{PKG} producer" in ros2(["pkg", "executables", PKG], env).stdout.splitlines()
    assert PKG in ros2(["pkg", "list"], env).stdout.splitlines()
    result = ros2(["--help"], env)
    assert result.returncode == 0 and "launch" in result.stdout and "topic" in result.stdout


@pytest.fixture
def talker(env: dict[str, str], request: pytest.FixtureRequest):
    pytest.importorskip("rclpy")
    pytest.importorskip("std_msgs.msg")
    proc = subprocess.Popen(
        [*ROS2, "run", PKG, "ros_talker", *getattr(request, "param", [])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.ros
def test_topic_list_shows_the_talker_topic_with_type(env: dict[str, str], talker: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while True:
        result = ros2(["topic", "list", "-t", "--spin-time", "1.5"], env)
        if "/chatter [std_msgs/msg/String]" in result.stdout.splitlines() or time.monotonic() > deadline:
            break
    assert "/chatter [std_msgs/msg/String]" in result.stdout.splitlines(), result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.parametrize("talker", [[], ["best_effort"]], indirect=True, ids=["reliable", "best_effort"])
def test_topic_echo_once_prints_yaml_with_matching_qos(env: dict[str, str], talker: subprocess.Popen) -> None:
    result = ros2(["topic", "echo", "/chatter", "--once", "--spin-time", "15"], env, timeout=40)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("data: hello ") and lines[0].endswith("x...")  # truncated at 128 characters
    assert len(lines[0]) == len("data: ") + 128 + 3 and lines[1] == "---"
    result = ros2(
        [
            "topic",
            "echo",
            "chatter",
            "std_msgs/msg/String",
            "--once",
            "--field",
            "data",
            "--full-length",
            "--spin-time",
            "15",
        ],
        env,
        timeout=40,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("x" * 200 + "\n---\n")


def test_topic_echo_bad_type_is_a_clear_error(env: dict[str, str]) -> None:
    pytest.importorskip("rclpy")
    result = ros2(["topic", "echo", "/x", "no_pkg/msg/Nope", "--spin-time", "0.2"], env)
    assert result.returncode == 1 and "message type 'no_pkg/msg/Nope' cannot be imported" in result.stderr


def test_topic_list_waits_until_discovery_settles(monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic discovered after --spin-time (a busy machine) is still listed; a settled graph ends the wait."""
    from beam_tracking_ros.ros.fallback import ros2cli

    clock = {"t": 0.0}
    monkeypatch.setattr(ros2cli.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(ros2cli, "_spin_for", lambda node, seconds: clock.__setitem__("t", clock["t"] + seconds))

    class Graph:  # /late appears 1.3 s in, /later 1.7 s in, then nothing changes
        def get_topic_names_and_types(self) -> list[tuple[str, list[str]]]:
            found = [("/late", ["std_msgs/msg/String"])] if clock["t"] >= 1.3 else []
            return found + ([("/later", ["std_msgs/msg/Empty"])] if clock["t"] >= 1.7 else [])

    assert [name for name, _ in ros2cli._discover(Graph(), 1.0)] == ["/late", "/later"]
    assert 2.2 <= clock["t"] < 2.4  # listed 0.5 s after the last change, not after a fixed wait

    class Busy:  # a graph that never settles: bounded by --spin-time + 5 s
        def get_topic_names_and_types(self) -> list[tuple[str, list[str]]]:
            return [(f"/t{int(clock['t'] * 10)}", ["x/msg/Y"])]

    clock["t"] = 0.0
    ros2cli._discover(Busy(), 1.0)
    assert 6.0 <= clock["t"] < 6.3
