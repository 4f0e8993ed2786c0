"""Named property flags and single-property reads agree with the full decode."""
import struct

import pytest
from hypothesis import given, strategies as st

from warrenmq.protocol import properties as P
from warrenmq.protocol.spec import BasicProperties, CLASS_BASIC


def header(props: BasicProperties, size: int = 0) -> bytes:
    return struct.pack(">HHQ", CLASS_BASIC, 0, size) + props.encode()


def test_flag_bits_match_the_encoder():
    for name, flag in (("content_type", P.FLAG_CONTENT_TYPE), ("headers", P.FLAG_HEADERS),
                       ("delivery_mode", P.FLAG_DELIVERY_MODE), ("reply_to", P.FLAG_REPLY_TO),
                       ("expiration", P.FLAG_EXPIRATION), ("user_id", P.FLAG_USER_ID),
                       ("cluster_id", P.FLAG_CLUSTER_ID)):
        props = BasicProperties(**{name: 2 if name == "delivery_mode" else ({} if name == "headers" else "x")})
        assert P.flags(header(props)) == flag, name
    h = header(BasicProperties(expiration="5", user_id="u"))
    assert h[P.FLAGS_OFFSET] & P.HI_EXPIRATION and h[P.FLAGS_OFFSET + 1] & P.LO_USER_ID


short = st.one_of(st.none(), st.text(max_size=20))


@given(ct=short, ce=short, hd=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3)),
       dm=st.one_of(st.none(), st.integers(0, 255)), pr=st.one_of(st.none(), st.integers(0, 255)), cid=short,
       rt=short)
def test_single_property_reads_agree_with_decode(ct, ce, hd, dm, pr, cid, rt):
    props = BasicProperties(content_type=ct, content_encoding=ce, headers=hd, delivery_mode=dm, priority=pr,
                            correlation_id=cid, reply_to=rt)
    h = header(props)
    if dm is not None:
        assert h[P.offset_of(h, P.FLAG_DELIVERY_MODE)] == dm
    pos = P.offset_of(h, P.FLAG_REPLY_TO)
    if rt is not None:
        n = h[pos]
        assert h[pos + 1:pos + 1 + n].decode() == rt


def test_offset_of_refuses_properties_after_reply_to_and_truncated_headers():
    h = header(BasicProperties(expiration="1"))
    with pytest.raises(ValueError):
        P.offset_of(h, P.FLAG_EXPIRATION)
    truncated = header(BasicProperties(headers={"a": 1}, reply_to="r"))[:16]
    with pytest.raises(IndexError):
        P.offset_of(truncated, P.FLAG_REPLY_TO)
