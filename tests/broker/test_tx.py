"""Transactions: publishes and settlements wait for commit; acks take their tags at once."""
import pytest

from warrenmq.protocol.errors import SoftError

from .conftest import TestChannel, publish


def test_publishes_wait_for_commit_and_rollback_drops_them(broker, channel):
    q, _ = broker.vhosts["/"].declare_queue("q", None)
    channel.select_tx()
    publish(channel, "", "q", b"a")
    assert len(q.messages) == 0
    channel.rollback()
    publish(channel, "", "q", b"b")
    channel.commit()
    assert [e.message.body for e in q.messages] == [b"b"]


def test_an_ack_in_a_transaction_takes_its_tag_now_and_settles_at_commit(broker, channel):
    q, _ = broker.vhosts["/"].declare_queue("q", None)
    feeder = TestChannel(broker, 2)
    publish(feeder, "", "q", b"a")
    publish(feeder, "", "q", b"b")
    c = channel.consume(q, "c", False, False, {})
    channel.start(c)
    channel.select_tx()
    channel.ack(1, False)
    with pytest.raises(SoftError):
        channel.ack(1, False)  # already taken by this transaction
    assert q.unacked == 2
    channel.commit()
    assert q.unacked == 1 and q.stats_acked == 1


def test_rollback_gives_the_tags_back(broker, channel):
    q, _ = broker.vhosts["/"].declare_queue("q", None)
    publish(TestChannel(broker, 2), "", "q", b"a")
    channel.start(channel.consume(q, "c", False, False, {}))
    channel.select_tx()
    channel.reject(1, False, False)
    channel.rollback()
    channel.ack(1, False)
    channel.commit()
    assert q.stats_acked == 1


def test_tx_and_confirm_modes_exclude_each_other(broker):
    a, b = TestChannel(broker, 1), TestChannel(broker, 2)
    a.select_tx()
    with pytest.raises(SoftError):
        a.select_confirm()
    b.select_confirm()
    with pytest.raises(SoftError):
        b.select_tx()
    with pytest.raises(SoftError):
        TestChannel(broker, 3).commit()
