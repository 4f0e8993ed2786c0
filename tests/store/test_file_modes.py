"""The data directory is 0750 and its files 0640 whatever the umask (RabbitMQ: 0750): message bodies
and password hashes are not readable by other users; a directory left by an older version is tightened."""
import os
import stat

import pika
import pytest

from warrenmq.config import BrokerConfig
from warrenmq.store import open_storage
from warrenmq.testing import EmbeddedBroker


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def modes(root):
    """{relative path: permission bits} of everything under ``root``, ``root`` itself as "."."""
    out = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.stat(p).st_mode)
    return out


def check(found):
    for path, mode in found.items():
        want = 0o750 if path == "." or path in ("msg_store", "pages") else 0o640
        assert mode == want, f"{path}: {oct(mode)}, want {oct(want)}"


@pytest.mark.timeout(60)
def test_a_new_data_directory_is_0750_and_its_files_0640_under_umask_0(tmp_path, permissive_umask):
    data = str(tmp_path / "data")
    with EmbeddedBroker(data_dir=data, queue_max_in_memory=5) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("q", durable=True)
        ch.queue_declare("t")  # transient: its paged bodies go to pages/
        for i in range(20):
            ch.basic_publish("", "q", b"x" * 600, pika.BasicProperties(delivery_mode=2))
            ch.basic_publish("", "t", b"y" * 600)
        found = modes(data)
        conn.close()
    assert {"msg_store", "pages", ".lock", "definitions.sqlite3", "definitions.sqlite3-wal",
            "definitions.sqlite3-shm"} <= set(found), sorted(found)
    assert any(p.startswith("msg_store/") and p.endswith(".seg") for p in found)
    assert any(p.startswith("pages/") and p.endswith(".seg") for p in found)
    check(found)
    check(modes(data))  # and after the clean stop (its checkpoint included)
    assert any(p.endswith(".idx") for p in modes(data))


def test_a_directory_left_by_an_older_version_is_tightened_at_start(tmp_path, permissive_umask):
    data = tmp_path / "data"
    (data / "msg_store").mkdir(parents=True, mode=0o777)
    data.chmod(0o755)
    (data / "msg_store").chmod(0o755)
    (data / "msg_store" / "0000000001.seg").write_bytes(b"")
    (data / ".lock").write_bytes(b"")
    for p in (data / "msg_store" / "0000000001.seg", data / ".lock"):
        p.chmod(0o644)
    storage = open_storage(BrokerConfig(data_dir=str(data)))
    try:
        check(modes(str(data)))
    finally:
        storage.close()
