"""The segment store under damage: torn tails are truncated, corrupt records skipped, nothing else lost."""
import logging
import os

from warrenmq.store import SegmentStore
from warrenmq.store.records import REC_SIZE
from warrenmq.store.segments import CHECKPOINT

from support.store import commit, loaded, message


def build(tmp_path, n=20, size=200):
    d = str(tmp_path / "msgs")
    s = SegmentStore(d)
    msgs = [message(i, size=size) for i in range(n)]
    for m in msgs:
        s.persist(m, [1])
    commit(s)
    s.close()
    # as after a crash: no checkpoint (one would not match the damaged files anyway: see test_checkpoint.py)
    os.unlink(os.path.join(d, CHECKPOINT))
    (seg,) = [os.path.join(d, f) for f in os.listdir(d)
              if f.endswith(".seg") and os.path.getsize(os.path.join(d, f))]
    return d, seg, msgs


def record_offsets(path):
    data = open(path, "rb").read()
    offs, off = [], 0
    while off < len(data):
        offs.append(off)
        off += REC_SIZE + int.from_bytes(data[off + 2:off + 6], "big")
    return offs


def test_torn_tail_is_truncated_and_earlier_records_kept(tmp_path, caplog):
    d, seg, msgs = build(tmp_path)
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size - 37)  # a crash in the middle of writing the last record
    torn = open(seg, "rb").read()[record_offsets(seg)[-1]:]
    with caplog.at_level(logging.WARNING, "warrenmq.store"):
        s = SegmentStore(d)
    rec = loaded(s)
    assert [r.body for r in rec[1]] == [m.body for m in msgs[:-1]]
    # what is cut is kept beside the segment, and the log says so at ERROR, with the size and the copy
    (copy,) = [os.path.join(d, f) for f in os.listdir(d) if ".torn-" in f]
    assert copy.startswith(seg + ".torn-")
    assert open(copy, "rb").read() == torn
    assert os.stat(copy).st_mode & 0o777 == 0o640
    (log,) = [r for r in caplog.records if "torn" in r.getMessage()]
    assert log.levelno == logging.ERROR
    assert f"{len(torn)} bytes" in log.getMessage() and copy in log.getMessage()
    offs = record_offsets(seg)
    assert os.path.getsize(seg) == offs[-1] + REC_SIZE + int.from_bytes(open(seg, "rb").read()[offs[-1] + 2:offs[-1] + 6], "big")
    s.close()


def test_flipped_byte_in_the_middle_loses_only_that_record(tmp_path, caplog):
    d, seg, msgs = build(tmp_path)
    offs = record_offsets(seg)
    victim = 7
    with open(seg, "r+b") as f:
        f.seek(offs[victim] + REC_SIZE + 30)  # inside the payload
        b = f.read(1)
        f.seek(offs[victim] + REC_SIZE + 30)
        f.write(bytes([b[0] ^ 0xFF]))
    with caplog.at_level(logging.ERROR, "warrenmq.store"):
        s = SegmentStore(d)
    rec = loaded(s)
    assert [r.body for r in rec[1]] == [m.body for i, m in enumerate(msgs) if i != victim]
    assert "corrupted record" in caplog.text
    assert s.corrupt_records == 1
    s.close()


def test_corrupted_length_field_resynchronises_on_the_next_record(tmp_path):
    d, seg, msgs = build(tmp_path)
    offs = record_offsets(seg)
    with open(seg, "r+b") as f:
        f.seek(offs[3] + 2)
        f.write(b"\x7f\xff\xff\xff")  # an absurd length
    s = SegmentStore(d)
    rec = loaded(s)
    assert [r.body for r in rec[1]] == [m.body for i, m in enumerate(msgs) if i != 3]
    s.close()


def test_new_writes_after_recovery_from_damage_are_kept(tmp_path):
    d, seg, msgs = build(tmp_path)
    with open(seg, "r+b") as f:
        f.truncate(os.path.getsize(seg) - 5)
    s = SegmentStore(d)
    loaded(s)
    extra = message(99)
    s.persist(extra, [1])
    commit(s)
    s.close()
    rec = loaded(SegmentStore(d))
    assert [r.body for r in rec[1]] == [m.body for m in msgs[:-1]] + [extra.body]


def test_garbage_file_does_not_stop_recovery(tmp_path):
    d, seg, msgs = build(tmp_path)
    with open(os.path.join(d, "0000000000.seg"), "wb") as f:  # an older segment full of junk
        f.write(os.urandom(5000))
    s = SegmentStore(d)
    assert [r.body for r in loaded(s)[1]] == [m.body for m in msgs]
    s.close()


def test_records_carry_zlibs_crc32(tmp_path):
    # whichever CRC-32 implementation wrote them (ISA-L's when installed), records check with the
    # stdlib's zlib.crc32, so a store moves between installations with and without it
    import struct
    import zlib
    d = str(tmp_path / "msgs")
    s = SegmentStore(d)
    msgs = [message(i, size=n) for i, n in enumerate((10, 5000, 70000))]
    for m in msgs:
        s.persist(m, [1])
    s.delivered(1, msgs[0].store_id)
    s.remove(1, msgs[1].store_id)
    commit(s)
    s.close()
    (seg,) = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".seg") and os.path.getsize(os.path.join(d, f))]
    data = open(seg, "rb").read()
    offs = record_offsets(seg)
    assert len(offs) == 5
    for off in offs:
        magic, size, crc, rtype = struct.unpack_from(">2sIIB", data, off)
        assert crc == zlib.crc32(data[off + REC_SIZE:off + REC_SIZE + size], zlib.crc32(bytes((rtype,))))
