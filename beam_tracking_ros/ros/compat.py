"""The real ROS 2 Python packages where they are installed, the package's own fallbacks elsewhere.

Why: ``message_filters`` and ``sensor_msgs_py`` ship with every ROS 2 install but are not on PyPI,
so these machines lack them. On a real install users expect the real ones (their fixes, their
behaviour), so everything here imports the real package first and never shadows it; our fallbacks in
``io/sync.py`` and ``io/convert.py`` follow their APIs, so callers write the same code either way.

* :func:`make_synchronizer` / :func:`sync_backend`: message_filters' ``Subscriber`` +
  ``ApproximateTimeSynchronizer``, else :mod:`beam_tracking_ros.io.sync`; :func:`sync_implementation`
  says which one a process uses (the tracker reports it in /diagnostics).
* :func:`read_points_numpy` / :func:`create_cloud`: sensor_msgs_py.point_cloud2's where importable
  (and given an rclpy PointCloud2), else ours. The package's own nodes call ``io.convert`` directly
  (zero-copy, duck-typed for rosbags); these two are for API users who want sensor_msgs_py semantics.
* :func:`imgmsg_to_numpy` / :func:`numpy_to_imgmsg`: cv_bridge's ``CvBridge`` where importable, else
  ours, with cv_bridge's shapes (mono images 2-D). The nodes use ``io.convert.image_from_msg`` (a
  zero-copy view, no OpenCV needed).
* :func:`implementations`: which of the two each upstream package resolves to in this process (the
  test session prints it in its header, so a CI log says which path it tested).

``BEAM_TRACKING_ROS_FALLBACKS=force`` makes every look-up here take the fallback even where the real
package is importable, and each resolution is recorded for the test session's per-test report
(:func:`beam_tracking_ros.ros.fallback.record_implementation`).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from beam_tracking_ros.io import convert as _convert
from beam_tracking_ros.io import sync as _sync
from beam_tracking_ros.ros.fallback import fallbacks_forced, record_implementation

BACKENDS = ("auto", "message_filters", "fallback")


def _import_real(name: str) -> Any | None:
    """The real module ``name`` or None; our own modules are never taken for it, and none is taken
    under ``BEAM_TRACKING_ROS_FALLBACKS=force``."""
    if fallbacks_forced():
        return None
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return None
    if getattr(mod, "__name__", "").startswith("beam_tracking_ros"):
        return None
    return mod


def have_message_filters() -> bool:
    return _import_real("message_filters") is not None


def sync_backend(prefer: str = "auto") -> SimpleNamespace:
    """Namespace with ``Subscriber``, ``SimpleFilter``, ``ApproximateTimeSynchronizer`` and ``name``.

    prefer: 'auto' (message_filters when importable, else the fallback), 'message_filters' (error if
    absent) or 'fallback'.
    """
    if prefer not in BACKENDS:
        raise ValueError(f"prefer must be one of {BACKENDS}, got {prefer!r}")
    if prefer != "fallback":
        mf = _import_real("message_filters")
        if mf is not None:
            record_implementation("message_filters", "upstream")
            return SimpleNamespace(name="message_filters", Subscriber=mf.Subscriber, SimpleFilter=mf.SimpleFilter,
                                   ApproximateTimeSynchronizer=mf.ApproximateTimeSynchronizer, module=mf)
        if prefer == "message_filters":
            why = ("BEAM_TRACKING_ROS_FALLBACKS=force rules it out" if fallbacks_forced()
                   else "message_filters is not installed (it ships with ROS 2)")
            raise ImportError(f"prefer='message_filters' but {why}; use prefer='auto' to fall back")
    record_implementation("message_filters", "fallback")
    return SimpleNamespace(name="fallback", Subscriber=_sync.Subscriber, SimpleFilter=_sync.SimpleFilter,
                           ApproximateTimeSynchronizer=_sync.ApproximateTimeSynchronizer, module=_sync)


def sync_implementation(prefer: str = "auto") -> str:
    """'message_filters' or 'fallback': which synchronizer :func:`make_synchronizer` would build."""
    return sync_backend(prefer).name


@dataclass
class SyncHandle:
    """What :func:`make_synchronizer` built: the subscribers, the synchronizer and its monitor."""

    subscribers: list[Any]
    synchronizer: Any
    monitor: _sync.SyncMonitor
    implementation: str

    def reset(self) -> None:
        _sync.reset_synchronizer(self.synchronizer)


def make_synchronizer(node: Any, inputs: Sequence[tuple[Any, str]], queue_size: int, slop: float,
                      callback: Callable[..., Any] | None = None, *, qos_profile: Any = None,
                      allow_headerless: bool = False, prefer: str = "auto",
                      names: Sequence[str] | None = None, jump_tolerance_s: float = 1.0) -> SyncHandle:
    """Subscribe to ``inputs`` [(msg_type, topic), ...] and approximately synchronize them.

    ``qos_profile`` defaults to the sensor-data profile (:mod:`.qos`). ``callback(*msgs)`` receives each
    synchronized set in input order. The returned handle's monitor counts drops, out-of-order stamps and
    clock jumps (and empties the queues on a jump) whichever implementation is used.
    """
    if not inputs:
        raise ValueError("inputs: need at least one (msg_type, topic)")
    backend = sync_backend(prefer)
    if qos_profile is None:
        from beam_tracking_ros.ros.qos import sensor_qos

        qos_profile = sensor_qos()
    subs = [backend.Subscriber(node, msg_type, topic, qos_profile=qos_profile) for msg_type, topic in inputs]
    sync = backend.ApproximateTimeSynchronizer(subs, queue_size, slop, allow_headerless=allow_headerless)
    if callback is not None:
        sync.registerCallback(callback)
    monitor = _sync.SyncMonitor(subs, sync, names=names or [t for _, t in inputs], jump_tolerance_s=jump_tolerance_s)
    return SyncHandle(subs, sync, monitor, backend.name)


# ------------------------------------------------------------------------------------------------
# sensor_msgs_py.point_cloud2
# ------------------------------------------------------------------------------------------------
def point_cloud_backend() -> str:
    """'sensor_msgs_py' when importable, else 'fallback'."""
    return "sensor_msgs_py" if _import_real("sensor_msgs_py.point_cloud2") is not None else "fallback"


def _is_rclpy_cloud(msg: Any) -> bool:
    try:
        from sensor_msgs.msg import PointCloud2
    except ImportError:
        return False
    return isinstance(msg, PointCloud2)


def upstream_reads_correctly(cloud: Any) -> bool:
    """Whether sensor_msgs_py's reader decodes ``cloud`` right: not for a cloud in the other byte order
    (sensor_msgs_py 5.x byte-swaps ``msg.data`` in place, so a second read returns garbage) nor for rows
    with padding (``row_step`` > ``point_step * width``, which it ignores)."""
    host_big = sys.byteorder == "big"
    return (bool(getattr(cloud, "is_bigendian", host_big)) == host_big
            and int(cloud.row_step) == int(cloud.point_step) * int(cloud.width))


def read_points_numpy(cloud: Any, field_names: Sequence[str] | None = None, skip_nans: bool = False) -> Any:
    """sensor_msgs_py.point_cloud2.read_points_numpy where installed (for rclpy clouds it reads right, see
    :func:`upstream_reads_correctly`), else ours -- which reads every layout."""
    pc2 = _import_real("sensor_msgs_py.point_cloud2")
    if pc2 is not None and _is_rclpy_cloud(cloud) and upstream_reads_correctly(cloud):
        record_implementation("sensor_msgs_py", "upstream")
        return pc2.read_points_numpy(cloud, field_names=field_names, skip_nans=skip_nans)
    record_implementation("sensor_msgs_py", "fallback")
    return _convert.read_points_numpy(cloud, field_names, skip_nans)


def create_cloud(header: Any, fields: Sequence[Any], points: Any) -> Any:
    """sensor_msgs_py.point_cloud2.create_cloud where installed, else ours (same layout)."""
    pc2 = _import_real("sensor_msgs_py.point_cloud2")
    if pc2 is not None:
        record_implementation("sensor_msgs_py", "upstream")
        return pc2.create_cloud(header, list(fields), points)
    record_implementation("sensor_msgs_py", "fallback")
    return _convert.create_cloud(header, fields, points)


# ------------------------------------------------------------------------------------------------
# cv_bridge
# ------------------------------------------------------------------------------------------------
def image_backend() -> str:
    """'cv_bridge' when importable, else 'fallback'."""
    return "cv_bridge" if _import_real("cv_bridge") is not None else "fallback"


def imgmsg_to_numpy(msg: Any, desired_encoding: str = "passthrough") -> Any:
    """``CvBridge().imgmsg_to_cv2`` where installed, else ours: (H, W, C) uint8, (H, W) for mono8.

    The fallback converts to 'passthrough' (a zero-copy view) or 'bgra8' only; other targets need
    OpenCV and are refused with a clear error rather than guessed.
    """
    cvb = _import_real("cv_bridge")
    record_implementation("cv_bridge", "fallback" if cvb is None else "upstream")
    if cvb is not None:
        return cvb.CvBridge().imgmsg_to_cv2(msg, desired_encoding=desired_encoding)
    if desired_encoding not in ("passthrough", str(msg.encoding), "bgra8"):
        raise ValueError(f"desired_encoding {desired_encoding!r}: without cv_bridge only 'passthrough', "
                         f"the image's own ({msg.encoding!r}) or 'bgra8' are supported")
    img = _convert.image_from_msg(msg, as_bgra=desired_encoding == "bgra8" and msg.encoding != "bgra8")
    return img[:, :, 0] if img.shape[2] == 1 else img


def numpy_to_imgmsg(img: Any, encoding: str = "bgra8") -> Any:
    """``CvBridge().cv2_to_imgmsg`` where installed, else ours (packed rows, little-endian)."""
    cvb = _import_real("cv_bridge")
    record_implementation("cv_bridge", "fallback" if cvb is None else "upstream")
    if cvb is not None:
        return cvb.CvBridge().cv2_to_imgmsg(img, encoding=encoding)
    return _convert.image_to_msg(img, 0, "", encoding=encoding)


def implementations() -> dict[str, str]:
    """Which implementation each upstream package resolves to here: 'upstream' or 'fallback'.

    Found without importing the launch packages (importing them would register their pytest plugins'
    side effects in a test session); the others are imported as the package itself would.
    """
    from beam_tracking_ros.ros.fallback.ros2cli import real_launch_available

    return {
        "launch, launch_ros": "upstream" if real_launch_available() else "fallback",
        "message_filters": "upstream" if have_message_filters() else "fallback",
        "sensor_msgs_py": "upstream" if point_cloud_backend() == "sensor_msgs_py" else "fallback",
        "cv_bridge": "upstream" if image_backend() == "cv_bridge" else "fallback",
    }

