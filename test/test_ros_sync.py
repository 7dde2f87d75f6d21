"""Approximate-time synchronization: one set of tests, run against every implementation available.

``impl`` is the package's fallback always, and the real ``message_filters`` where it is importable
(a real ROS 2 install): the assertions are the same for both, so the fallback behaves like the real
thing wherever the tests can tell. Filters are driven with SimpleFilter.signalMessage (no DDS), plus
one test over real DDS with a publisher in another OS process.
"""
from __future__ import annotations

import itertools
import random
import time
from types import SimpleNamespace

import pytest
from ros_testing import popen_python, requires_ros

from beam_tracking_ros.io import sync as fsync
from beam_tracking_ros.ros import compat

NS = 1_000_000_000


@pytest.fixture(params=["fallback", "message_filters"])
def impl(request):
    if request.param == "message_filters":
        pytest.importorskip("message_filters")
        if not compat.have_message_filters():  # importable, but BEAM_TRACKING_ROS_FALLBACKS=force rules it out
            pytest.skip("the suite's fallback mode (BEAM_TRACKING_ROS_FALLBACKS=force) uses the fallback only")
        backend = compat.sync_backend("message_filters")
        assert backend.name == "message_filters"
        return backend
    return compat.sync_backend("fallback")


def _time(ns: int):
    try:
        from builtin_interfaces.msg import Time
    except ImportError:  # the fallback needs only .sec/.nanosec
        return SimpleNamespace(sec=ns // NS, nanosec=ns % NS)
    return Time(sec=ns // NS, nanosec=ns % NS)


class Msg:
    """A stamped message (header.stamp like every sensor message), labelled for assertions."""

    def __init__(self, t: float, tag: str = ""):
        self.ns = round(t * 1e9)
        self.header = SimpleNamespace(stamp=_time(self.ns), frame_id="")
        self.tag = tag

    def __repr__(self) -> str:
        return f"Msg({self.ns / 1e9:.3f}{self.tag})"


def _build(impl, n_inputs: int, queue_size: int, slop: float):
    filters = [impl.SimpleFilter() for _ in range(n_inputs)]
    sync = impl.ApproximateTimeSynchronizer(filters, queue_size, slop)
    out: list[tuple] = []
    sync.registerCallback(lambda *msgs: out.append(msgs))
    return filters, sync, out


def _spread(msgs) -> int:
    stamps = [m.ns for m in msgs]
    return max(stamps) - min(stamps)


def test_pairs_within_slop_are_matched_in_order(impl):
    filters, _, out = _build(impl, 2, 10, 0.02)
    rng = random.Random(1)
    for k in range(20):
        t = 10.0 + 0.1 * k
        filters[0].signalMessage(Msg(t + rng.uniform(-0.005, 0.005), "a"))
        filters[1].signalMessage(Msg(t + rng.uniform(-0.005, 0.005), "b"))
    assert len(out) == 20
    assert all(_spread(s) < 0.02 * NS for s in out)
    assert all(s[0].tag == "a" and s[1].tag == "b" for s in out)  # callback args in input order
    assert [s[0].ns for s in out] == sorted(s[0].ns for s in out)


def test_scrambled_arrival_recombines_like_message_filters(impl):
    # message_filters' own test: shuffled sequences of equal stamps recombine into the exact pairs
    rng = random.Random(0)
    for n in range(1, 10):
        filters, _, out = _build(impl, 2, n, 0.1)
        seq0 = [Msg(float(t), "a") for t in range(n)]
        seq1 = [Msg(float(t), "b") for t in range(n)]
        for m in rng.sample(seq0, n):
            filters[0].signalMessage(m)
        assert out == []
        for m in rng.sample(seq1, n):
            filters[1].signalMessage(m)
        assert set(out) == set(zip(seq0, seq1))


def test_unmatched_messages_are_never_emitted_and_queues_stay_bounded(impl):
    filters, sync, out = _build(impl, 2, 4, 0.01)
    strays = []
    for k in range(200):
        t = 1.0 + 0.1 * k
        filters[0].signalMessage(Msg(t))
        stray = Msg(t + 0.05, "stray")  # halfway between partners: outside the slop of all of them
        strays.append(stray)
        filters[1].signalMessage(stray)
        filters[1].signalMessage(Msg(t + 0.001))
        assert all(len(q) <= 4 for q in sync.queues)
    assert len(out) == 200
    assert not any(m.tag == "stray" for s in out for m in s)
    assert all(len(q) <= 4 for q in sync.queues)


def test_queue_overflow_drops_the_oldest(impl):
    filters, sync, out = _build(impl, 2, 3, 0.01)
    for k in range(10):
        filters[0].signalMessage(Msg(float(k)))
    assert len(sync.queues[0]) == 3
    filters[1].signalMessage(Msg(0.0))  # its partner was pushed out by the queue bound
    filters[1].signalMessage(Msg(5.0))
    assert out == []
    filters[1].signalMessage(Msg(9.0))
    assert len(out) == 1 and out[0][0].ns == 9 * NS


def test_best_candidate_is_the_closest_stamp(impl):
    filters, _, out = _build(impl, 2, 10, 0.05)
    for t in (1.000, 1.010, 1.030):
        filters[0].signalMessage(Msg(t))
    filters[1].signalMessage(Msg(1.012))
    assert len(out) == 1 and out[0][0].ns == round(1.010 * NS)


def test_spread_equal_to_slop_is_not_a_match(impl):
    filters, _, out = _build(impl, 2, 10, 0.25)
    filters[0].signalMessage(Msg(1.0))
    filters[1].signalMessage(Msg(1.25))  # spread == slop: message_filters needs strictly less
    assert out == []
    filters[1].signalMessage(Msg(1.2))
    assert len(out) == 1 and out[0][1].ns == round(1.2 * NS)


def test_out_of_order_arrival_still_pairs_each_stamp_once(impl):
    filters, _, out = _build(impl, 2, 5, 0.01)
    for t in (3.0, 1.0, 2.0):
        filters[0].signalMessage(Msg(t, "a"))
    for t in (2.0, 3.0, 1.0):
        filters[1].signalMessage(Msg(t, "b"))
    assert sorted((a.ns, b.ns) for a, b in out) == [(k * NS, k * NS) for k in (1, 2, 3)]
    filters[1].signalMessage(Msg(2.0, "late duplicate"))  # its partner was used already
    assert len(out) == 3


@pytest.mark.parametrize("n_inputs", [3, 4])
def test_three_and_four_inputs(impl, n_inputs):
    filters, _, out = _build(impl, n_inputs, 6, 0.03)
    rng = random.Random(n_inputs)
    expected = 0
    for k in range(30):
        base = 5.0 + 0.1 * k
        msgs = [(i, Msg(base + rng.uniform(0.0, 0.012), str(i))) for i in range(n_inputs)]
        drop = k % 7 == 3  # one input misses this frame: no set may be emitted for it
        if drop:
            msgs.pop(rng.randrange(n_inputs))
        else:
            expected += 1
        rng.shuffle(msgs)  # arrival order differs per frame
        for i, m in msgs:
            filters[i].signalMessage(m)
    assert len(out) == expected
    for s in out:
        assert [m.tag for m in s] == [str(i) for i in range(n_inputs)]
        assert _spread(s) < 0.03 * NS
        assert len({round(m.ns / NS, 1) for m in s}) == 1  # all from the same frame


def test_20hz_and_10hz_inputs_with_a_timing_offset(impl):
    # radar at 20 Hz, camera at 10 Hz stamped 3 ms later; messages arrive in stamp order
    filters, _, out = _build(impl, 2, 10, 0.02)
    events = [(0.05 * k, 0) for k in range(40)] + [(0.1 * k + 0.003, 1) for k in range(20)]
    for t, i in sorted(events):
        filters[i].signalMessage(Msg(100.0 + t))
    assert len(out) == 20  # every camera frame, each with the radar scan 3 ms before it
    for radar, camera in out:
        assert camera.ns - radar.ns == pytest.approx(0.003 * NS, abs=2)
    assert len({r.ns for r, _ in out}) == 20


def test_headerless_messages_are_ignored_unless_allowed(impl):
    filters, _, out = _build(impl, 2, 5, 0.1)
    filters[0].signalMessage(SimpleNamespace(data=1))  # no header: ignored, never an exception
    filters[0].signalMessage(Msg(1.0))
    filters[1].signalMessage(Msg(1.0))
    assert len(out) == 1


def test_clock_jump_backwards_needs_a_reset_and_the_monitor_does_it(impl):
    for with_monitor in (False, True):
        filters, sync, out = _build(impl, 2, 4, 0.01)
        monitor = fsync.SyncMonitor(filters, sync, ["radar", "camera"]) if with_monitor else None
        jumps = []
        if monitor:
            monitor.on_clock_jump.append(jumps.append)
        for k in range(8):  # a bag's first loop; radar has extra frames left unmatched
            filters[0].signalMessage(Msg(100.0 + k))
            if k < 3:
                filters[1].signalMessage(Msg(100.0 + k))
        assert len(out) == 3
        for k in range(3):  # the bag loops: time starts again at 100 s
            filters[0].signalMessage(Msg(100.0 + k + 0.5))
            filters[1].signalMessage(Msg(100.0 + k + 0.5))
        if not with_monitor:
            # the stale newer radar stamps fill the queue, so every new radar message is the oldest and
            # is dropped at once: the synchronizer stays stuck (why the monitor resets it)
            assert len(out) == 3
        else:
            assert len(jumps) == 1 and monitor.clock_jumps == 1
            assert len(out) == 3 + 2  # only the message that revealed the jump is lost
            st = monitor.stats()
            assert st.emitted == len(out) and st.received == [11, 6]


def test_monitor_counts_drops_and_out_of_order(impl):
    filters, sync, out = _build(impl, 2, 3, 0.01)
    mon = fsync.SyncMonitor(filters, sync, ["a", "b"], jump_tolerance_s=10.0)
    for k in range(10):
        filters[0].signalMessage(Msg(10.0 + k))
    filters[0].signalMessage(Msg(12.5))  # out of order (older than 19 s), and dropped by the full queue
    filters[1].signalMessage(Msg(19.0))
    st = mon.stats()
    assert st.received == [11, 1] and st.emitted == len(out) == 1
    assert st.out_of_order == [1, 0]
    assert st.queued == [2, 0]
    assert st.dropped == [8, 0]  # 11 received - 1 emitted - 2 still queued
    d = st.as_dict()
    assert d["a.dropped"] == 8 and d["emitted"] == 1


def test_fallback_search_equals_message_filters_product_order():
    # the pruned search must pick the same set as message_filters' itertools.product scan
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(2, 4)
        slop = rng.choice([3, 5, 8]) * 10**6
        sync = fsync.ApproximateTimeSynchronizer([fsync.SimpleFilter() for _ in range(n)], 8, slop / 1e9)
        pivot = 10**9
        cands = []
        for _ in range(n - 1):
            c = [pivot + rng.randint(-slop, slop) for _ in range(rng.randint(1, 5))]
            c = sorted(dict.fromkeys(c), key=lambda s: abs(s - pivot))
            cands.append(c)
        expected = None
        for combo in itertools.product(*cands):
            vv = [pivot, *combo]
            if max(vv) - min(vv) < slop:
                expected = list(combo)
                break
        assert sync._first_set(cands, pivot) == expected


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="queue_size"):
        fsync.ApproximateTimeSynchronizer([fsync.SimpleFilter()], 0, 0.1)
    with pytest.raises(ValueError, match="slop"):
        fsync.ApproximateTimeSynchronizer([fsync.SimpleFilter()], 3, -0.1)
    with pytest.raises(ValueError, match="prefer"):
        compat.sync_backend("cpp")
    assert compat.sync_implementation() == ("message_filters" if compat.have_message_filters() else "fallback")


# --- over real DDS ------------------------------------------------------------------------------
_PUBLISHER = """
import time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import NavSatFix, Image
from builtin_interfaces.msg import Time
rclpy.init()
node = rclpy.create_node('sync_test_pub')
qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
pub_img = node.create_publisher(Image, '/sync_test/image', qos)
pub_gps = node.create_publisher(NavSatFix, '/sync_test/gps', qos)
deadline = time.time() + 20
while (pub_img.get_subscription_count() == 0 or pub_gps.get_subscription_count() == 0) and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
for k in range(40):
    ns = 50 * 10**9 + k * 50_000_000
    img = Image(height=2, width=2, encoding='bgra8', step=8, data=bytes(range(16)))
    img.header.stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
    gps = NavSatFix(latitude=1.0, longitude=2.0, altitude=float(k))
    gps.header.stamp = Time(sec=(ns + 2_000_000) // 10**9, nanosec=(ns + 2_000_000) % 10**9)
    pub_gps.publish(gps)
    pub_img.publish(img)
    time.sleep(0.05)
time.sleep(1.0)
node.destroy_node()
rclpy.shutdown()
print('published 40')
"""


@pytest.mark.ros
@requires_ros
def test_subscribers_over_dds_from_another_process(impl):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, NavSatFix

    from beam_tracking_ros.io import convert

    prefer = impl.name
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("sync_test_sub", context=context)
    got = []
    handle = compat.make_synchronizer(
        node, [(Image, "/sync_test/image"), (NavSatFix, "/sync_test/gps")], queue_size=10, slop=0.01,
        callback=lambda img, gps: got.append((convert.stamp_to_ns(img.header.stamp),
                                              convert.stamp_to_ns(gps.header.stamp), gps.altitude)),
        qos_profile=QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE), prefer=prefer)
    assert handle.implementation == prefer
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    proc = popen_python(_PUBLISHER)
    try:
        deadline = time.time() + 40
        while len(got) < 40 and time.time() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        for _ in range(20):
            executor.spin_once(timeout_sec=0.05)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert "published 40" in out, err
    assert len(got) == 40, (len(got), err)
    for k, (img_ns, gps_ns, alt) in enumerate(got):
        assert gps_ns - img_ns == 2_000_000 and img_ns == 50 * NS + k * 50_000_000 and alt == float(k)
    stats = handle.monitor.stats()
    assert stats.emitted == 40 and stats.dropped == [0, 0]
