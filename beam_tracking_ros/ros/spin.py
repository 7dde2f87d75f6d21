"""The common ``main`` of the package's nodes: init, spin, clean shutdown, clear exit codes.

Why one helper: every node must end cleanly on Ctrl-C / SIGTERM (``ros2 launch`` sends SIGINT,
then SIGTERM), say one clear line and exit 2 on a bad configuration, and exit with the code a node
asks for (``SystemExit``, e.g. the simulator after its last episode) -- the same way everywhere.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException


class ConfigurationError(ValueError):
    """A node's parameters or files are invalid; the node says why and exits with code 2."""


def run_node(name: str, factory: Callable[[], Any], args: list[str] | None = None) -> int:
    """Create the node with ``factory`` and spin it until shutdown; return the process exit code."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        try:
            node = factory()
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except SystemExit as exc:
            code = int(exc.code or 0)
        except ValueError as exc:  # ConfigurationError and the core's validation errors
            print(f"{name}: invalid configuration: {exc}", file=sys.stderr)
            code = 2
        except Exception as exc:
            if rclpy.ok():
                raise
            # A callback racing the signal handler's shutdown (publish on an invalid context): not an error.
            if "context is invalid" not in str(exc):
                raise
        finally:
            _ignore_further_sigint()
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
    except KeyboardInterrupt:  # a second Ctrl-C before the cleanup above began: we are already stopping
        rclpy.try_shutdown()
    return code


def _ignore_further_sigint() -> None:
    """Once shutting down, another SIGINT (a launcher forwarding the terminal's Ctrl-C, a second press)
    must not interrupt the cleanup with a traceback; SIGTERM and SIGKILL still end a stuck node."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
