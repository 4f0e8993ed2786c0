"""The node's disk and file descriptor figures in /api/nodes (the web UI's overview shows them)."""
import os
import shutil

from warrenmq.testing import EmbeddedBroker

from .conftest import Api


def test_node_has_file_descriptors_and_no_disk_figure_without_a_data_directory(api, mbroker):
    status, _, nodes = api.get("/api/nodes")
    assert status == 200
    node = nodes[0]
    assert mbroker.broker.storage.path == ""  # in memory: nothing on disk for the disk alarm to watch
    assert node["disk_free"] is None
    assert node["disk_free_limit"] == mbroker.broker.config.disk_free_limit
    assert 0 < node["fd_used"] <= node["fd_total"]
    # the broker runs in this process: the same descriptor table, give or take the ones opened meanwhile
    assert abs(node["fd_used"] - len(os.listdir("/proc/self/fd"))) < 16


def test_node_disk_free_is_the_data_directorys_file_system():
    with EmbeddedBroker(management=True, durable=True) as b:
        status, _, nodes = Api(b.management_url).get("/api/nodes")
        assert status == 200
        path = b.broker.storage.path
        assert path
        assert abs(nodes[0]["disk_free"] - shutil.disk_usage(path).free) < 64 << 20
