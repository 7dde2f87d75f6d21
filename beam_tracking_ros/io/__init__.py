"""ROS-free I/O: ROS 2 messages <-> numpy, the time synchronizer and its monitor, topic names.

Why a layer of its own: the live nodes (``ros/``) and the offline dataset builder (``data/bag.py``,
reading bags with the ``rosbags`` library, no rclpy) must turn the same messages into the same arrays
and pair them by the same rule. Nothing here imports rclpy at module level, so ``data/`` can use it
without standing on ``ros/``, and the pure-numpy tests of it run without ROS.
"""
