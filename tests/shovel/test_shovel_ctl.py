"""``warrenmq ctl set_parameter shovel ...``, ``clear_parameter``, ``list_parameters`` and ``shovel_status``
against an embedded broker's management API, with rabbitmqctl 3.10.8's lines and exit codes."""
import json
import re

from support.links import drain, publish_confirmed
from warrenmq.cli import ctl


def run(mbroker, capsys, *argv):
    code = ctl.main(["--url", mbroker.management_url, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_set_list_status_clear(mbroker, capsys):
    value = '{"src-uri":"amqp://","src-queue":"cq1","dest-uri":"amqp://","dest-queue":"cq2"}'
    code, out, err = run(mbroker, capsys, "set_parameter", "shovel", "c1", value)
    assert (code, err) == (0, "")
    assert out == f'Setting runtime parameter "c1" for component "shovel" to "{value}" in vhost "/" ...\n'
    mbroker.api.wait_state("c1")
    publish_confirmed(mbroker.url, "cq1", [b"via ctl"], declare=False)
    assert [m[2] for m in drain(mbroker.url, "cq2", 1)] == [b"via ctl"]

    code, out, _ = run(mbroker, capsys, "-q", "list_parameters")
    assert (code, out) == (0, f"component\tname\tvalue\nshovel\tc1\t{value}\n")

    code, out, _ = run(mbroker, capsys, "shovel_status")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("Shovel status on node ")
    assert lines[1].split("\t") == ["destination", "destination_protocol", "destination_queue", "last_changed", "name",
                                    "source", "source_protocol", "source_queue", "state", "termination_reason", "type",
                                    "vhost"]
    row = lines[2].split("\t")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[3])  # rabbitmqctl pads the hour
    assert row[:3] == ["amqp://", "amqp091", "cq2"] and row[4:] == ["c1", "amqp://", "amqp091", "cq1", "running", "",
                                                                    "dynamic", "/"]
    code, out, _ = run(mbroker, capsys, "shovel_status", "--formatter", "json")
    [status] = json.loads(out)
    assert status["name"] == "c1" and status["state"] == "running" and status["termination_reason"] == ""

    code, out, _ = run(mbroker, capsys, "clear_parameter", "shovel", "c1")
    assert (code, out) == (0, 'Clearing runtime parameter "c1" for component "shovel" on vhost "/" ...\n')
    assert mbroker.api.shovels() == []


def test_errors_as_rabbitmqctl(mbroker, capsys):
    code, _, err = run(mbroker, capsys, "set_parameter", "shovel", "bad", '{"src-uri":"amqp://"}')
    assert code == 69
    assert err == ("Error:\nValidation failed\n\nMust specify 'src-exchange' or 'src-queue'\n"
                   'Key "dest-uri" not found in bad\n\n')
    code, _, err = run(mbroker, capsys, "clear_parameter", "shovel", "nope")
    assert (code, err) == (69, "Error:\nParameter does not exist\n")
