"""Mini implementation of the part of ROS 2 ``launch_ros`` our launch files use (see the fallback package)."""

from . import actions, parameter_descriptions, substitutions

__all__ = ["actions", "parameter_descriptions", "substitutions"]
