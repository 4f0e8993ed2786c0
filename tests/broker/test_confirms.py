"""Publisher confirms: the per-channel tracker and the broker's registry."""
from warrenmq.broker.confirms import ConfirmRegistry

from .conftest import TestChannel, publish


def tracker():
    sent = []
    registry = ConfirmRegistry()
    return registry, registry.tracker(lambda seq, multiple, nack: sent.append((seq, multiple, nack))), sent


def test_confirms_of_one_batch_are_coalesced_into_one_ack():
    registry, t, sent = tracker()
    for _ in range(3):
        t.published()
    registry.flush()
    assert sent == [(3, True, False)]
    t.published()
    registry.flush()
    assert sent[-1] == (4, False, False)


def test_a_confirm_waits_for_its_store_epoch_and_later_ones_wait_behind_it():
    registry, t, sent = tracker()
    t.published()
    t.published()
    t.wait_for(7)
    t.published()
    registry.flush()
    assert sent == [(1, False, False)]  # 2 waits for epoch 7, 3 behind it
    registry.store_synced(6)
    assert sent == [(1, False, False)]
    registry.store_synced(7)
    assert sent == [(1, False, False), (3, True, False)] and not registry.waiting


def test_a_nack_keeps_its_place_behind_waiting_confirms():
    registry, t, sent = tracker()
    t.published()
    t.wait_for(1)
    t.published()
    t.nack()
    registry.flush()
    assert sent == []
    registry.store_synced(1)
    assert sent == [(1, False, False), (2, False, True)]


def test_a_failed_store_nacks_every_waiting_confirm_and_later_ones_at_once():
    registry, t, sent = tracker()
    t.published()
    t.wait_for(1)
    t.published()  # did not wait: acked in order after the nack
    t.published()
    t.wait_for(1)
    registry.store_failed()
    assert sent == [(1, False, True), (2, False, False), (3, False, True)]
    t.published()
    t.wait_for(2)
    assert sent[-1] == (4, False, True)
    registry.store_recovered()
    t.published()
    t.wait_for(3)
    registry.store_synced(3)
    assert sent[-1] == (5, False, False)


def test_a_channel_in_confirm_mode_waits_for_the_store_of_a_durable_broker(durable_broker):
    b = durable_broker
    b.vhosts["/"].declare_queue("d", None, durable=True)
    ch = TestChannel(b)
    ch.select_confirm()
    publish(ch, "", "d", b"p", delivery_mode=2)
    publish(ch, "", "d", b"t")
    b.confirms.flush()
    assert ch.take() == []  # the persistent one waits for its batch, the transient one behind it
    epoch = b.store.write_pending()
    b.store.sync()
    b.store_synced(epoch)
    assert ch.take() == [("ack", 2, True)]


def test_a_refused_publish_is_nacked(broker):
    broker.vhosts["/"].declare_queue("full", None, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    ch = TestChannel(broker)
    ch.select_confirm()
    publish(ch, "", "full")
    publish(ch, "", "nowhere")
    broker.confirms.flush()
    assert ch.take() == [("nack", 1, False), ("ack", 2, False)]
