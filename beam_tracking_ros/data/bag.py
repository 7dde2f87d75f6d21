"""rosbag2 I/O without ROS (the ``rosbags`` library), and bags -> dataset.

Writing: :class:`BagWriter` writes a rosbag2 directory with MCAP storage (what ``ros2 bag record``
writes by default) with our messages (``msg/*.msg``) and the standard ones registered. rosbags' MCAP
writer keeps messages in an in-memory 1 MiB chunk and writes ``metadata.yaml`` and the MCAP summary
only on ``close()``; a killed recorder would lose the whole pending chunk. So the writer closes the
chunk and flushes + fsyncs the file at least every ``flush_interval`` seconds (wall clock): a killed
writer loses at most that much.

Reading: :func:`read_bag` iterates ``(topic, stamp_ns, msg)`` in time order from MCAP and sqlite3
bags (as written by real ``ros2 bag record`` or by :class:`BagWriter`), registering message types
from the definitions stored in the bag. Recovery of an unfinalized MCAP (no ``metadata.yaml`` because
the writer was killed; no summary/footer): the reader streams the records of the ``.mcap`` file itself
(schemas and channels are repeated inside the chunks), stops at the first incomplete record and logs
how much it recovered -- the equivalent of ``ros2 bag reindex`` without rewriting the bag.
A corrupt or truncated *finalized* bag raises :class:`BagError` naming the file (pass
``recover=True`` to salvage what streams).

Bag -> dataset: :func:`bag_frames` converts messages with the ROS-free converters of
``beam_tracking_ros.io.convert`` and groups them with the approximate-time synchronizer of
``beam_tracking_ros.io.sync`` (the live node's), giving ``SensorFrame``s for the builder;
:func:`build_from_bags` builds a dataset from bags. Episodes are keyed by (bag, BeamObservation.episode);
splits are by episode.
"""
from __future__ import annotations

import heapq
import io
import logging
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..modalities import SENSORS

LOG = logging.getLogger(__name__)

PACKAGE = "beam_tracking_ros"
BEAM_OBSERVATION_TYPE = f"{PACKAGE}/msg/BeamObservation"


class BagError(ValueError):
    """A bag that cannot be read or used: missing, corrupt, truncated, or without the needed topics."""


# ----------------------------------------------------------------------------------------------
# message types
# ----------------------------------------------------------------------------------------------
def find_msg_dir() -> Path:
    """The package's ``msg/`` directory (resources.py: an explicit root, the installed share dir, the checkout)."""
    from ..resources import find_resource

    try:
        return find_resource("msg", kind="dir", marker="BeamObservation.msg")
    except FileNotFoundError as exc:
        raise BagError(f"cannot find the message definitions: {exc}") from None


def make_typestore(msg_dir: str | os.PathLike[str] | None = None) -> Any:
    """A rosbags Typestore with the ROS 2 standard types (Kilted) plus our messages from ``msg/``."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    mdir = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    types: dict[str, Any] = {}
    for path in sorted(mdir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{PACKAGE}/msg/{path.stem}"))
    if not types:
        raise BagError(f"no .msg files in {mdir}")
    store.register(types)
    return store


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
# MCAP record layouts (mcap.dev/spec): opcode u8, length u64, then the fields
_CHUNK_CRC_AT = 1 + 8 + 8 + 8 + 8  # Chunk: message_start_time, message_end_time, uncompressed_size, uncompressed_crc
_DATA_END_SIZE = 1 + 8 + 4  # DataEnd: data_section_crc u32
_FOOTER_SIZE = 1 + 8 + 8 + 8 + 4  # Footer: summary_start u64, summary_offset_start u64, summary_crc u32
_MAGIC_SIZE = 8


def _crc32_of(fh: Any, start: int, end: int, block: int = 1 << 20) -> int:
    fh.seek(start)
    crc, left = 0, end - start
    while left > 0:
        data = fh.read(min(block, left))
        if not data:
            break
        crc, left = zlib.crc32(data, crc), left - len(data)
    return crc


def write_summary_crcs(mcap_path: Path) -> None:
    """Fill the data-section and summary CRCs of a finished MCAP file (its writer leaves them 0).

    Why afterwards: both cover bytes only known at the end (the whole data section; the summary through
    the footer), so they are computed from the file once it is closed; the chunk CRCs are written as
    each chunk closes, so a killed recorder's chunks are protected too.
    """
    with open(mcap_path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        footer = size - _MAGIC_SIZE - _FOOTER_SIZE
        fh.seek(footer)
        head = fh.read(_FOOTER_SIZE)
        if len(head) != _FOOTER_SIZE or head[0] != 0x02:
            raise BagError(f"{mcap_path}: no MCAP footer where expected: not a finished MCAP file")
        summary_start = struct.unpack_from("<Q", head, 9)[0]
        data_end = (summary_start or footer) - _DATA_END_SIZE
        fh.seek(data_end)
        if fh.read(1) != b"\x0f":
            raise BagError(f"{mcap_path}: no DataEnd record before the summary")
        data_crc = _crc32_of(fh, 0, data_end)
        fh.seek(data_end + 1 + 8)
        fh.write(struct.pack("<I", data_crc))
        if summary_start:
            summary_crc = _crc32_of(fh, summary_start, footer + _FOOTER_SIZE - 4)
            fh.seek(footer + _FOOTER_SIZE - 4)
            fh.write(struct.pack("<I", summary_crc))
        fh.flush()
        os.fsync(fh.fileno())


def _flushing_writer_class() -> type:
    """rosbags ``Writer`` whose MCAP storage writes CRCs and can close its pending chunk and fsync on demand."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.storage_mcap import McapWriter

    class _FlushingMcap(McapWriter):  # type: ignore[misc]
        def close_chunk(self) -> None:
            """The chunk as rosbags writes it, then its uncompressed CRC filled in (rosbags writes 0)."""
            crc = zlib.crc32(self.chunk.bio.getvalue())
            start = self.bio.tell()
            super().close_chunk()
            end = self.bio.tell()
            self.bio.seek(start + _CHUNK_CRC_AT)
            self.bio.write(struct.pack("<I", crc))
            self.bio.seek(end)

        def flush(self) -> None:
            if self.chunk.bio.tell():
                self.close_chunk()
            self.bio.flush()
            os.fsync(self.bio.fileno())

    class _Writer(Writer):  # type: ignore[misc]
        STORAGE_PLUGINS: ClassVar[Mapping[Any, type]] = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _FlushingMcap}

        def close(self) -> None:
            """metadata.yaml first (rosbags writes it after closing the storage), then the summary CRCs: a
            writer stopped during the CRC pass leaves a bag that opens, its two CRCs still 0 (unchecked)."""
            path = self.storage.path
            super().close()
            write_summary_crcs(path)

    return _Writer


class BagWriter:
    """Write a rosbag2 (MCAP by default) from message objects of a rosbags Typestore.

    ``add_topic(topic, msgtype)`` then ``write(topic, msg, stamp_ns=None)`` (default: the message's
    header stamp). ``flush_interval`` (s) bounds what a killed writer loses; 0 flushes every message.
    Use as a context manager; ``close()`` writes the MCAP summary and ``metadata.yaml``.
    """

    def __init__(self, path: str | os.PathLike[str], typestore: Any = None, *, storage: str = "mcap",
                 flush_interval: float = 1.0) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0 s, got {flush_interval}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag {self.path} exists already; rosbag2 bags are never overwritten")
        self.typestore = typestore if typestore is not None else make_typestore()
        cls = _flushing_writer_class() if storage == "mcap" else Writer
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = cls(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.flush_interval = float(flush_interval)
        self._last_flush = time.monotonic()
        self.count = 0

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with type ``msgtype`` (e.g. 'sensor_msgs/msg/Image'); idempotent."""
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise ValueError(f"topic {topic} already has type {self._connections[topic].msgtype}")
            return
        if msgtype not in self.typestore.types:
            raise ValueError(f"msgtype {msgtype!r} is not known to the typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)

    def write(self, topic: str, msg: Any, stamp_ns: int | None = None, msgtype: str | None = None) -> None:
        """Serialize ``msg`` (CDR) and append it; an unknown topic is added with ``msgtype`` or the
        message's own ``__msgtype__``."""
        if topic not in self._connections:
            self.add_topic(topic, msgtype or msg.__msgtype__)
        conn = self._connections[topic]
        if stamp_ns is None:
            from ..io.convert import stamp_to_ns

            stamp_ns = stamp_to_ns(msg.header.stamp)
        self._writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, conn.msgtype))
        self.count += 1
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Make everything written so far durable (closes the pending MCAP chunk, fsyncs)."""
        storage = self._writer.storage
        if hasattr(storage, "flush"):
            storage.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
@dataclass
class BagMessage:
    topic: str
    stamp_ns: int
    msg: Any
    msgtype: str


def _mcap_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.mcap")) if path.is_dir() else [path]


def verify_bag(path: str | os.PathLike[str]) -> int:
    """Check every CRC an MCAP bag carries (each chunk's, the data section's); returns how many chunk CRCs
    were checked. BagError names the file and the damaged chunk's time range. A CRC of 0 means "not
    written" (bags of other writers, ours before CRCs) and is skipped, as the MCAP spec says; sqlite3
    bags have nothing to check. Why: a flipped payload byte otherwise builds a dataset with different
    arrays and no warning."""
    from mcap.exceptions import McapError
    from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk

    checked = 0
    for f in _mcap_files(Path(path)):
        if f.suffix != ".mcap":
            continue
        try:
            with open(f, "rb") as fh:
                for rec in StreamReader(fh, emit_chunks=True, validate_crcs=True).records:
                    if type(rec).__name__ == "Chunk":
                        try:
                            breakup_chunk(rec, validate_crc=True)
                        except CRCValidationError:
                            raise BagError(
                                f"bag {f}: the chunk with messages {rec.message_start_time / 1e9:.3f} .. "
                                f"{rec.message_end_time / 1e9:.3f} s fails its CRC (corrupted on disk or in copy); "
                                "build with --recover to skip what cannot be read") from None
                        checked += rec.uncompressed_crc != 0
        except BagError:
            raise
        except CRCValidationError as exc:
            raise BagError(f"bag {f}: the data section fails its CRC ({exc}); the file was modified after it "
                           "was written") from None
        except (McapError, EOFError, ValueError, struct.error) as exc:
            raise BagError(f"bag {f}: cannot be read to its end ({type(exc).__name__}: {exc}); a recorder killed "
                           "before closing the bag leaves it so: build with --recover") from None
    return checked


def bag_topics(path: str | os.PathLike[str], recover: bool | None = None) -> dict[str, str]:
    """Topic -> message type of a bag (from metadata.yaml, or by streaming an unfinalized MCAP)."""
    path = Path(path)
    if _finalized(path) and not recover:
        from rosbags.highlevel import AnyReader

        try:
            with AnyReader([path.parent if path.is_file() else path]) as reader:
                return {c.topic: c.msgtype for c in reader.connections}
        except Exception as exc:  # rosbags raises several unrelated types for corrupt files
            raise BagError(f"bag {path}: cannot open ({type(exc).__name__}: {exc})") from exc
    topics: dict[str, str] = {}
    for f in _mcap_files(path):
        for rec in _stream_records(f, stop_on_message=True):
            if type(rec).__name__ == "Channel":
                topics[rec.topic] = _schema_names.get((f, rec.schema_id), "")
    return topics


_schema_names: dict[tuple[Path, int], str] = {}


def _finalized(path: Path) -> bool:
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return True
        if not any(path.glob("*.mcap")):
            kinds = sorted({p.suffix for p in path.iterdir()})
            raise BagError(f"bag {path}: no metadata.yaml and no .mcap file to recover from "
                           f"(found {kinds}); a sqlite3 bag needs its metadata.yaml (ros2 bag reindex)")
        return False
    if path.suffix == ".mcap":
        # one rule for a bag and its file: the only .mcap of a finalized bag directory is read (and refused
        # when damaged) as that bag is; a file of a split bag, or a loose .mcap, is streamed on its own
        return _only_file_of_bag(path)
    raise BagError(f"bag {path}: expected a rosbag2 directory or an .mcap file")


_warned: set[tuple[Path, float]] = set()  # (file, mtime) whose salvage report was logged


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _only_file_of_bag(path: Path) -> bool:
    meta = path.parent / "metadata.yaml"
    if not meta.is_file():
        return False
    import yaml

    try:
        info = (yaml.safe_load(meta.read_text(encoding="utf-8")) or {}).get("rosbag2_bagfile_information", {})
    except (OSError, yaml.YAMLError):
        return False
    return [Path(f).name for f in info.get("relative_file_paths") or []] == [path.name]


def _stream_records(file: Path, stop_on_message: bool = False) -> Iterator[Any]:
    """Records of an MCAP file in file order, salvaging what is readable.

    The top-level records are walked one by one (opcode, length, body), so the offset of each is known.
    A chunk that fails its CRC or cannot be decompressed or parsed is skipped and the walk goes on. Where
    the walk itself breaks (a damaged record header, or the tail a killed writer never finished), the
    file's chunk index -- when it has a summary -- gives every chunk after the damage; without one, the
    bytes after the break are scanned for the next whole chunk whose CRC holds. What was skipped is
    logged once per file, in one line.
    """
    from mcap.exceptions import McapError
    from mcap.stream_reader import StreamReader, breakup_chunk

    errors = (McapError, EOFError, ValueError, OSError, struct.error, KeyError)
    n = 0
    seen: set[int] = set()  # offsets of the chunks read or skipped
    skipped: list[str] = []
    broke: str | None = None
    broke_at = 0

    def chunk_records(chunk: Any, offset: int) -> list[Any]:
        seen.add(offset)
        try:
            return breakup_chunk(chunk, validate_crc=True)
        except errors as exc:
            skipped.append(f"chunk {chunk.message_start_time / 1e9:.3f}..{chunk.message_end_time / 1e9:.3f} s "
                           f"({type(exc).__name__})")
            return []

    def emit(rec: Any) -> Iterator[Any]:
        nonlocal n
        kind = type(rec).__name__
        if kind == "Schema":
            _schema_names[(file, rec.id)] = rec.name
        if kind == "Message":
            n += 1
            if stop_on_message:
                return
        yield rec

    with open(file, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if fh.read(len(_MCAP_MAGIC)) != _MCAP_MAGIC:
            raise BagError(f"bag file {file}: not a readable MCAP (no MCAP magic at its start)")
        pos = len(_MCAP_MAGIC)
        while pos < size:
            fh.seek(pos)
            head = fh.read(9)
            length = int.from_bytes(head[1:9], "little") if len(head) == 9 else -1
            if length < 0 or pos + 9 + length > size:
                broke, broke_at = f"a record at byte {pos} runs past the end of the file", pos
                break
            body = fh.read(length)
            try:
                rec = next(iter(StreamReader(io.BytesIO(head + body), skip_magic=True, emit_chunks=True).records))
            except (*errors, StopIteration) as exc:
                broke, broke_at = f"{type(exc).__name__} at byte {pos}", pos
                break
            kind = type(rec).__name__
            if kind == "Chunk":
                for r in chunk_records(rec, pos):
                    yield from emit(r)
            else:
                yield from emit(rec)
            if kind == "Footer":
                break
            pos += 9 + length
    if broke is not None:
        index = _chunk_index(file)
        if index is None:  # no index: resynchronise on the next whole chunk with a valid CRC
            found = 0
            for offset, rec in _scan_chunks(file, seen, broke_at + 1):
                found += 1
                for r in chunk_records(rec, offset):
                    yield from emit(r)
            if found or broke_at + 9 < size:
                skipped.append(f"the damaged or unfinished stretch after message {n - found} ({broke}; no chunk "
                               f"index, {found} later whole chunk(s) found by scanning)")
            else:
                skipped.append(f"an unfinished last record ({broke}): the writer stopped there")
        else:
            schemas, channels, chunks = index
            yield from (r for rec in (*schemas, *channels) for r in emit(rec))
            with open(file, "rb") as fh:
                for ci in chunks:
                    if ci.chunk_start_offset in seen:
                        continue
                    fh.seek(ci.chunk_start_offset)
                    try:
                        rec = next(iter(StreamReader(io.BytesIO(fh.read(ci.chunk_length)), skip_magic=True,
                                                     emit_chunks=True).records))
                    except (*errors, StopIteration) as exc:
                        seen.add(ci.chunk_start_offset)
                        skipped.append(f"chunk {ci.message_start_time / 1e9:.3f}..{ci.message_end_time / 1e9:.3f} s "
                                       f"({type(exc).__name__})")
                        continue
                    for r in chunk_records(rec, ci.chunk_start_offset):
                        yield from emit(r)
    if skipped:
        key = (file, file.stat().st_mtime)
        if key not in _warned:
            _warned.add(key)
            LOG.warning("bag file %s: read %d message(s); skipped %s", file, n, "; ".join(skipped))


def _scan_chunks(file: Path, seen: set[int], start: int) -> Iterator[tuple[int, Any]]:
    """``(offset, chunk)`` of the whole chunks found by scanning the bytes of an MCAP file from ``start``:
    each position with the Chunk opcode and a length that fits is parsed, and kept only when its CRC is
    written and holds (so a stray 0x06 in a payload is never taken for a chunk). Memory-mapped: a killed
    recorder's multi-GB file is not read into memory."""
    import mmap

    from mcap.stream_reader import StreamReader, breakup_chunk

    with open(file, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size - start < 9 + 32:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            i = data.find(b"\x06", start)
            while i >= 0:
                length = int.from_bytes(data[i + 1:i + 9], "little")
                nxt = i + 1
                if i not in seen and 32 <= length <= size - i - 9:
                    try:
                        rec = next(iter(StreamReader(io.BytesIO(data[i:i + 9 + length]), skip_magic=True,
                                                     emit_chunks=True).records))
                        if type(rec).__name__ == "Chunk" and rec.uncompressed_crc:
                            breakup_chunk(rec, validate_crc=True)
                            yield i, rec
                            nxt = i + 9 + length
                    except Exception:  # not a chunk after all
                        pass
                i = data.find(b"\x06", nxt)


def _chunk_index(file: Path) -> tuple[list[Any], list[Any], list[Any]] | None:
    """(schemas, channels, chunk indexes by offset) from the file's summary, or None without one."""
    from mcap.reader import make_reader

    try:
        with open(file, "rb") as fh:
            summary = make_reader(fh).get_summary()
    except Exception:  # no footer or a damaged summary: no index to go on from
        return None
    if summary is None or not summary.chunk_indexes:
        return None
    return (list(summary.schemas.values()), list(summary.channels.values()),
            sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset))


def read_bag(path: str | os.PathLike[str], topics: Iterable[str] | None = None, typestore: Any = None,
             recover: bool | None = None) -> Iterator[BagMessage]:
    """Messages of a bag in time order as rosbags dataclasses.

    ``recover``: None (default) streams an unfinalized MCAP (no metadata.yaml) and reads finalized bags
    normally; True streams MCAP files even when finalized (salvage a corrupt/truncated bag); False
    refuses unfinalized bags.
    """
    path = Path(path)
    wanted = set(topics) if topics is not None else None
    finalized = _finalized(path)
    if finalized and not recover:
        yield from _read_finalized(path.parent if path.is_file() else path, wanted, typestore)
        return
    if not finalized and recover is False:
        raise BagError(f"bag {path}: not finalized (no metadata.yaml: the writer was killed?); "
                       "read what was flushed with --recover (recover=True)")
    yield from _read_streamed(path, wanted, typestore)


def _read_finalized(path: Path, wanted: set[str] | None, typestore: Any) -> Iterator[BagMessage]:
    from rosbags.highlevel import AnyReader

    ts = typestore if typestore is not None else make_typestore()
    try:
        reader = AnyReader([path], default_typestore=ts)
        reader.open()
    except Exception as exc:
        raise BagError(f"bag {path}: cannot open ({type(exc).__name__}: {exc}); if it is truncated or damaged, "
                       "salvage the readable part with --recover (recover=True)") from exc
    try:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        it = reader.messages(connections=conns)
        while True:
            try:
                conn, stamp, raw = next(it)
                msg = reader.deserialize(raw, conn.msgtype)
            except StopIteration:
                return
            except Exception as exc:
                raise BagError(f"bag {path}: corrupt or truncated ({type(exc).__name__}: {exc}); "
                               "salvage the readable part with --recover (recover=True)") from exc
            yield BagMessage(conn.topic, int(stamp), msg, conn.msgtype)
    finally:
        reader.close()


def _read_streamed(path: Path, wanted: set[str] | None, typestore: Any, reorder_ns: int = 2_000_000_000
                   ) -> Iterator[BagMessage]:
    """Stream MCAP records; messages are re-ordered by log time within ``reorder_ns`` (chunks of an
    MCAP are written in arrival order, so a bounded heap restores time order)."""
    from rosbags.typesys import get_types_from_msg

    ts = typestore if typestore is not None else make_typestore()
    heap: list[tuple[int, int, BagMessage]] = []
    seq = 0
    for f in _mcap_files(path):
        schemas: dict[int, Any] = {}
        channels: dict[int, tuple[str, str]] = {}
        for rec in _stream_records(f):
            kind = type(rec).__name__
            if kind == "Schema":
                schemas[rec.id] = rec
                if rec.name not in ts.types and rec.encoding == "ros2msg":
                    ts.register(get_types_from_msg(rec.data.decode("utf-8"), rec.name))
            elif kind == "Channel":
                schema = schemas.get(rec.schema_id)
                channels[rec.id] = (rec.topic, schema.name if schema is not None else "")
            elif kind == "Message":
                topic, msgtype = channels.get(rec.channel_id, ("", ""))
                if not topic or (wanted is not None and topic not in wanted):
                    continue
                msg = ts.deserialize_cdr(rec.data, msgtype)
                heapq.heappush(heap, (rec.log_time, seq, BagMessage(topic, rec.log_time, msg, msgtype)))
                seq += 1
                while heap and heap[0][0] < rec.log_time - reorder_ns:
                    yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def reindex_bag(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> tuple[Path, int]:
    """A bag that ``ros2 bag`` and rosbags cannot open -- a killed recorder's (no ``metadata.yaml``, no MCAP
    summary) or a damaged one -- rewritten as a finalized rosbag2: every message the salvage reads
    (:func:`read_bag` with ``recover=True``), in time order, with CRCs, a summary and ``metadata.yaml``.
    Written to ``out`` (default ``<bag>_reindexed``) and never over the original; returns (path, messages).
    """
    src = Path(path)
    dst = Path(out) if out is not None else src.with_name(src.name.removesuffix(".mcap") + "_reindexed")
    if dst.exists():
        raise BagError(f"reindex: {dst} exists already; give another --out")
    ts = make_typestore()
    n = 0
    try:
        with BagWriter(dst, ts) as w:
            for m in read_bag(src, recover=True, typestore=ts):
                w.write(m.topic, m.msg, stamp_ns=m.stamp_ns, msgtype=m.msgtype)
                n += 1
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    if n == 0:
        shutil.rmtree(dst, ignore_errors=True)
        raise BagError(f"reindex: nothing readable in {src}")
    return dst, n


# ----------------------------------------------------------------------------------------------
# bags -> frames -> dataset
# ----------------------------------------------------------------------------------------------
def default_topics() -> dict[str, str]:
    """Modality -> topic of the CARLA-bridge naming used by our simulator and bridge."""
    from ..io.topics import Topics

    t = Topics()
    return {"camera": t.camera, "radar": t.radar, "lidar": t.lidar, "gnss": t.gnss, "beam": t.beam_observation,
            "rsu_gnss": t.rsu_gnss}


def bag_gps_reference(bags: Sequence[str | os.PathLike[str]], topic: str,
                      recover: bool | None = None) -> tuple[float, float, float] | None:
    """The RSU's (lat, lon, alt) from its own GNSS topic in ``bags``: the first valid fix of each bag.

    Why: the GPS feature is the target's position relative to the RSU, and the live node uses the
    reference stored with the model, so a dataset must be built around the RSU that recorded it. None
    when no bag has the topic (the caller then needs an explicit reference); BagError when the bags
    were recorded at RSUs further apart than ``SITE_TOLERANCE_M`` (one reference cannot serve
    them) or a bag has the topic without a single valid fix.
    """
    from ..io.convert import ConversionError, gnss_from_msg

    fixes: list[tuple[str, np.ndarray]] = []
    for b in bags:
        if topic not in bag_topics(b, recover):
            continue
        fix = None
        for m in read_bag(b, [topic], None, recover):
            try:
                fix = gnss_from_msg(m.msg, topic=topic)
                break
            except ConversionError:
                continue
        if fix is None:
            raise BagError(f"bag {b}: {topic} (the RSU's GNSS) has no valid fix to use as the GPS reference")
        fixes.append((str(b), fix))
    if not fixes:
        return None
    from .preprocess import SITE_TOLERANCE_M, site_offset_m

    first = fixes[0][1]
    for name, fix in fixes[1:]:
        d = site_offset_m(fix, first)
        if d > SITE_TOLERANCE_M:
            raise BagError(f"bag {name}: its RSU ({fix.tolist()}) is {d:.0f} m from that of {fixes[0][0]} "
                           f"({first.tolist()}); build one dataset per RSU site")
    return (float(first[0]), float(first[1]), float(first[2]))


def resolve_gps_reference(cfg: Any, bags: Sequence[str | os.PathLike[str]], topic: str,
                          recover: bool | None = None) -> Any:
    """``cfg`` (a PreprocessConfig, or None for the default) with the GPS feature's reference set.

    An explicit ``gps_reference`` (not the (0, 0, 0) default) wins, with a warning when the bags'
    RSU fix disagrees; otherwise the bags' RSU fix is used. Neither -> ValueError: the default
    origin would measure positions from (0 deg, 0 deg), thousands of km away, and train a model
    on features of 1e6-1e7 m that no other site could reuse.
    """
    from .preprocess import SITE_TOLERANCE_M, PreprocessConfig, site_offset_m

    cfg = cfg or PreprocessConfig()
    explicit = tuple(float(v) for v in cfg.gps_reference) != (0.0, 0.0, 0.0)
    recorded = bag_gps_reference(bags, topic, recover)
    if explicit:
        if recorded is not None:
            d = site_offset_m(recorded, cfg.gps_reference)
            if d > SITE_TOLERANCE_M:
                LOG.warning("gps_reference %s is %.0f m from the RSU fix recorded on %s (%s); using the "
                            "configured one", tuple(cfg.gps_reference), d, topic, recorded)
        return cfg
    if recorded is None:
        raise ValueError(
            f"gnss: no GPS reference for the target's position: the bags have no RSU fix on {topic} and "
            "none is configured; pass --gps-reference LAT,LON,ALT (the RSU's antenna), set gps_reference "
            "in --preprocess, record the RSU's GNSS topic, or leave gnss out of --modalities")
    return replace(cfg, gps_reference=recorded)


def _converters() -> dict[str, Any]:
    from ..io import convert

    return {
        "camera": lambda m, topic: convert.image_from_msg(m, topic=topic, as_bgra=True).copy(),
        # the live tracker's magnitude check (its max_abs_value default): a byte-swapped cloud is malformed
        # here too, so no window is built from frames the tracker would drop
        "radar": lambda m, topic: convert.check_magnitude(
            convert.radar_from_msg(m, topic=topic, allow_empty=True), convert.MAX_ABS_VALUE, topic),
        "lidar": lambda m, topic: convert.check_magnitude(
            convert.lidar_from_msg(m, topic=topic, allow_empty=True), convert.MAX_ABS_VALUE, topic),
        "gnss": lambda m, topic: convert.gnss_from_msg(m, topic=topic),
        "beam": lambda m, topic: convert.beam_observation_from_msg(m, topic=topic),
    }


def check_topics(path: str | os.PathLike[str], topics: Mapping[str, str], recover: bool | None = None) -> None:
    """Raise BagError naming every required topic the bag lacks (and listing what it has)."""
    present = bag_topics(path, recover)
    missing = {m: t for m, t in topics.items() if t not in present}
    if missing:
        raise BagError(f"bag {path}: required topics missing: "
                       + ", ".join(f"{t} ({m})" for m, t in missing.items())
                       + f"; the bag has {sorted(present)}")


@dataclass
class _Stamped:
    """What the synchronizer sees: a header stamp and the converted payload."""

    header: Any
    value: Any


def bag_frames(path: str | os.PathLike[str], modalities: Sequence[str], *,
               topics: Mapping[str, str] | None = None, slop: float = 0.05, queue_size: int = 30,
               recover: bool | None = None, typestore: Any = None,
               stats: dict[str, int] | None = None) -> Iterator[tuple[int, Any]]:
    """Synchronized ``(episode, SensorFrame)`` pairs of one bag, in time order.

    The converted messages of ``modalities`` and the beam observation go through the live node's
    approximate-time synchronizer (``queue_size``, ``slop`` s). ``episode`` is the BeamObservation's
    episode field. Malformed messages are counted in ``stats`` and skipped (as the live node does).
    """
    from ..io.sync import ApproximateTimeSynchronizer, SimpleFilter, SyncMonitor
    from ..sim.types import SensorFrame

    all_topics = dict(default_topics())
    all_topics.update(topics or {})
    keys = [*modalities, "beam"]
    need = {k: all_topics[k] for k in keys}
    check_topics(path, need, recover)
    conv = _converters()
    by_topic = {t: k for k, t in need.items()}
    filters = {k: SimpleFilter() for k in keys}
    out: list[tuple[int, Any]] = []
    counts = stats if stats is not None else {}

    def on_set(*msgs: _Stamped) -> None:
        vals = {k: m.value for k, m in zip(keys, msgs)}
        obs = vals["beam"]
        frame = SensorFrame(stamp=obs.stamp, beam=obs.label,
                            **{("gnss" if k == "gnss" else k): vals[k] for k in modalities})
        out.append((int(obs.episode), frame))

    sync = ApproximateTimeSynchronizer([filters[k] for k in keys], queue_size, slop)
    sync.registerCallback(on_set)
    # the live node's monitor: a backwards clock jump (looping bag) empties the queues
    SyncMonitor([filters[k] for k in keys], sync, names=keys)
    for bm in read_bag(path, need.values(), typestore, recover):
        key = by_topic[bm.topic]
        try:
            value = conv[key](bm.msg, bm.topic)
        except ValueError as exc:
            counts[f"malformed_{key}"] = counts.get(f"malformed_{key}", 0) + 1
            LOG.debug("skipping malformed %s message: %s", bm.topic, exc)
            continue
        filters[key].signalMessage(_Stamped(bm.msg.header, value))
        if out:
            yield from out
            out.clear()
    yield from out


def build_from_bags(root: str | os.PathLike[str], bags: Sequence[str | os.PathLike[str]], *,
                    modalities: Sequence[str] = SENSORS,
                    topics: Mapping[str, str] | None = None, P: int = 8, H: int = 3, cfg: Any = None,
                    slop: float = 0.05, queue_size: int = 30,
                    fractions: Sequence[float] = (0.8, 0.1, 0.1),
                    seed: int = 0, chunk_size: int = 256, max_gap: float | None = 1.0,
                    recover: bool | None = None) -> dict[str, Any]:
    """Bags -> dataset at ``root`` (returns its meta). Episodes = (bag, BeamObservation.episode);
    a stamp going backwards or a gap over ``max_gap`` s restarts the window within an episode.

    Every bag is checked for the required topics before anything is written; any failure leaves
    ``root`` without a manifest.
    """
    from .builder import assign_splits, build_dataset

    if not bags:
        raise ValueError("bags: need at least one bag")
    all_topics = dict(default_topics())
    all_topics.update(topics or {})
    need = {k: all_topics[k] for k in [*modalities, "beam"]}
    for b in bags:
        # a finalized bag is checked up front (a corrupt one refused); a killed recorder's bag is streamed
        # as before (recover=None), and --recover reads whatever it can
        if recover is False or (recover is None and _finalized(Path(b))):
            verify_bag(b)
        check_topics(b, need, recover)
    if "gnss" in modalities:  # before reading any bag through: a missing reference fails at once
        cfg = resolve_gps_reference(cfg, bags, all_topics["rsu_gnss"], recover)
    # pass 1: the (small) beam observations give the episodes of every bag
    keys: list[tuple[int, int]] = []
    from ..io.convert import beam_observation_from_msg

    for bi, b in enumerate(bags):
        seen: set[int] = set()
        for bm in read_bag(b, [need["beam"]], None, recover):
            seen.add(int(beam_observation_from_msg(bm.msg).episode))
        keys += [(bi, e) for e in sorted(seen)]
    ids = {k: i for i, k in enumerate(keys)}
    splits = assign_splits(list(ids.values()), fractions, seed)
    stats: dict[str, int] = {}

    def episodes() -> Iterator[tuple[int, Iterator[Any]]]:
        for bi, b in enumerate(bags):
            yield from _group_episodes(bi, bag_frames(b, modalities, topics=topics, slop=slop,
                                                      queue_size=queue_size, recover=recover, stats=stats),
                                       ids)

    meta = {"source": "rosbag2", "bags": [str(Path(b)) for b in bags], "topics": need,
            "sync": {"slop": slop, "queue_size": queue_size},
            "episode_keys": [[str(Path(bags[bi])), e] for bi, e in keys]}
    from .preprocess import PreprocessConfig

    result = build_dataset(root, episodes(), P=P, H=H, cfg=cfg or PreprocessConfig(),
                           modalities=modalities, splits=splits, fractions=fractions, seed=seed, meta=meta,
                           chunk_size=chunk_size, max_gap=max_gap)
    if stats:
        LOG.warning("skipped malformed messages: %s", stats)
    return result


def _group_episodes(bag_index: int, frames: Iterator[tuple[int, Any]], ids: Mapping[tuple[int, int], int]
                    ) -> Iterator[tuple[int, Iterator[Any]]]:
    """Split a bag's (episode, frame) stream into per-episode frame iterators (consumed in order)."""
    pending: list[tuple[int, Any]] = []
    it = iter(frames)

    def run(first: tuple[int, Any]) -> Iterator[Any]:
        ep = first[0]
        yield first[1]
        for e, f in it:
            if e != ep:
                pending.append((e, f))
                return
            yield f

    nxt = next(it, None)
    while nxt is not None:
        key = (bag_index, nxt[0])
        if key not in ids:
            raise BagError(f"bag #{bag_index}: episode {nxt[0]} appeared only in the second pass")
        yield ids[key], run(nxt)
        nxt = pending.pop() if pending else next(it, None)
