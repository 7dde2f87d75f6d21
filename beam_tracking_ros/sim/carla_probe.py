"""Is a CARLA server listening? A quick TCP probe, and the one-line message when none answers.

Why a plain socket and not ``carla.Client``: the launch file's ``simulator:=auto`` must decide
within a second or two whether to start the CARLA bridge or the built-in simulator, and must work
where the ``carla`` client is not installed. A CARLA server accepts TCP connections on its RPC
port (default 2000) as soon as it is up, so a successful ``connect`` is a cheap, reliable sign
that a server is there; the bridge node then confirms with ``client.get_server_version()``.

ROS-free and carla-free on purpose (imported by launch files before any node starts).
"""

from __future__ import annotations

import socket


def _check(host: str, port: int, timeout_s: float) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty string, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")


def carla_server_answers(host: str = "127.0.0.1", port: int = 2000, timeout_s: float = 1.0) -> bool:
    """True when something accepts a TCP connection at ``host:port`` within ``timeout_s`` seconds.

    Never blocks longer than ``timeout_s`` (plus name resolution of ``host``); a refused
    connection returns False at once. An unresolvable host is "no server" (False), not an error.
    """
    _check(host, port, timeout_s)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:  # refused, timed out, unreachable, unknown host
        return False


def describe_no_server(host: str, port: int, timeout: float) -> str:
    """The one line the bridge and the launch file print when no CARLA server answered."""
    return (f"no CARLA server answered at {host}:{port} within {timeout:g} s "
            f"(start the CARLA server there, or set simulator:=builtin for the built-in simulator)")
