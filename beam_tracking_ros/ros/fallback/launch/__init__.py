"""Mini implementation of the part of ROS 2 ``launch`` our launch files use (fallback, see parent package).

Imported as ``launch`` only inside the fallback ``ros2 launch`` process; the names and keyword signatures
match the real package so the same launch files run unchanged on a real ROS 2 install.
"""

from . import actions, conditions, event_handlers, launch_description_sources, substitutions, utilities
from .core import (
    Action,
    Condition,
    LaunchContext,
    LaunchDescription,
    LaunchDescriptionEntity,
    LaunchError,
    SomeSubstitutionsType,
    Substitution,
)
from .launch_description_sources import LaunchDescriptionSource
from .launch_service import LaunchService

__all__ = [
    "Action",
    "Condition",
    "LaunchContext",
    "LaunchDescription",
    "LaunchDescriptionEntity",
    "LaunchDescriptionSource",
    "LaunchError",
    "LaunchService",
    "SomeSubstitutionsType",
    "Substitution",
    "actions",
    "conditions",
    "event_handlers",
    "launch_description_sources",
    "substitutions",
    "utilities",
]
