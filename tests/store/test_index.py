"""The segment store's index (message id -> segment, holders, offset, length) against a plain dict."""
import random
import sys

from warrenmq.store.index import _CHUNK_BITS, _SPARSE, Index as _Index, fields as _fields, ref as _ref


def test_index_matches_a_dict_under_a_random_workload():
    rnd = random.Random(5)
    ix, model = _Index(), {}
    mid = 1
    for step in range(100_000):
        r = rnd.random()
        if r < 0.5:  # new ids grow one by one; a few messages are held by several queues
            holders = rnd.randint(1, 5) if rnd.random() < 0.95 else {1, 2}
            ref = _ref(rnd.randint(1, 9), holders, rnd.randint(0, 1 << 30), rnd.randint(12, 1 << 20))
            ix[mid] = model[mid] = ref
            mid += 1
        elif model:
            # mostly the oldest goes (a FIFO queue), sometimes a recent one; compaction re-sets some
            k = min(model) if rnd.random() < 0.7 else rnd.choice(list(model)[-50:])
            if rnd.random() < 0.1 and isinstance(model[k], int):
                ix[k] = model[k] = _ref(3, model[k] & 0xFFFFFFFF, 7, 99)
            else:
                del ix[k]
                del model[k]
        if step % 10_000 == 0:
            assert len(ix) == len(model)
            assert dict(ix.items()) == model
    assert dict(ix.items()) == model
    for k, ref in model.items():
        assert ix.get(k) == ref and k in ix
        assert _fields(ix.get(k)) == _fields(ref)
    assert ix.get(mid + 10) is None and (mid + 10) not in ix


def test_a_chunk_goes_when_empty_and_a_pinned_old_one_shrinks():
    ix = _Index()
    n = 3 << _CHUNK_BITS
    for mid in range(n):
        ix[mid] = _ref(1, 7, mid * 100, 50)
    for mid in range(1, n):  # everything but message 0 goes: its chunk is pinned by it alone
        del ix[mid]
    assert len(ix) == 1 and list(ix.chunks) == [0]
    assert isinstance(ix.chunks[0], dict) and len(ix.chunks[0]) < _SPARSE
    assert _fields(ix.get(0)) == (1, 7, 0, 50)
    del ix[0]
    assert len(ix) == 0 and not ix.chunks


def test_a_dense_chunk_costs_about_16_bytes_an_entry():
    ix = _Index()
    for mid in range(1 << _CHUNK_BITS):
        ix[mid] = _ref(2, 1, mid, 60)
    hi, lo, _ = ix.chunks[0]
    assert (sys.getsizeof(hi) + sys.getsizeof(lo)) / (1 << _CHUNK_BITS) < 17
