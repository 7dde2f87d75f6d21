"""beam_tracking_ros: sensing-aided mmWave beam tracking with knowledge distillation, for ROS 2.

The ROS-free core (``channel``, ``sim``, ``data``, ``models``, ``kd``, ``metrics``, ``train``)
imports without rclpy; the ROS 2 nodes live in ``ros``.

Why ``extend_path``: the generated message module ``beam_tracking_ros.msg`` is installed by
colcon into ``install/.../site-packages/beam_tracking_ros``, while a developer (or pytest run
from the source tree) may import this same package from the checkout. Extending ``__path__``
lets both directories serve one package, so ``beam_tracking_ros.msg`` is found whichever copy
of the hand-written modules comes first on ``sys.path``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
