"""`beam-tracking`: the command-line tools of the ROS-free core.

Each group of subcommands lives next to the code it drives and adds itself through a
``register(subparsers)`` function, so this file only assembles them:

- ``train``, ``distill``, ``evaluate``, ``export``   (beam_tracking_ros.train.cli)
- ``dataset generate|build|summary|import-deepsense`` (beam_tracking_ros.data.cli)

(The built-in simulator runs as the ``simulator_node`` / ``make demo``, or through ``dataset generate``.)

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_GROUPS = ("beam_tracking_ros.train.cli", "beam_tracking_ros.data.cli")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand group that is installed."""
    parser = argparse.ArgumentParser(
        prog="beam-tracking",
        description="Sensing-aided mmWave beam tracking: simulate, build datasets, train, distill, evaluate, export.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that group is not part of this installation
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
