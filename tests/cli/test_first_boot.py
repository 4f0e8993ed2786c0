"""The default user and vhost are created on first boot only (an empty definitions database), as RabbitMQ
does; given again on a later boot they are ignored, and the log says so (docs/configuration.md)."""
import pika
import pytest

from support.process import BrokerProcess


def can_log_in(port, user, password, vhost="/"):
    try:
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, vhost, pika.PlainCredentials(user, password), connection_attempts=1)).close()
        return True
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError):
        return False


def boot(tmp_path, log_name):
    log = tmp_path / log_name
    return BrokerProcess(str(tmp_path / "data"), "--log-file", str(log)), log


def test_default_user_and_vhost_only_on_first_boot_and_a_warning_when_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("WARRENMQ_DEFAULT_USER", "admin")
    monkeypatch.setenv("WARRENMQ_DEFAULT_PASS", "s3cret")
    monkeypatch.setenv("WARRENMQ_DEFAULT_VHOST", "apps")
    b, log = boot(tmp_path, "1.log")
    with b:
        assert can_log_in(b.port, "admin", "s3cret", "apps")
        assert not can_log_in(b.port, "guest", "guest")  # no guest when another default user is given
        assert b.stop() == 0
    text = log.read_text()
    assert "first boot: the definitions database in " in text
    assert "Adding vhost 'apps' (description: 'Default virtual host', tags: [])" in text
    assert "Created user 'admin'" in text
    assert "Successfully set permissions for 'admin' in virtual host 'apps' to '.*', '.*', '.*'" in text

    # the same settings again (a deployment that passes them at every start): applied already, nothing to say
    b, log = boot(tmp_path, "2.log")
    with b:
        assert can_log_in(b.port, "admin", "s3cret", "apps")
        b.stop()
    text = log.read_text()
    assert "first boot" not in text and "ignored" not in text and "Created user" not in text

    # a new password and vhost in the settings: not applied (the database has users), and the log says so
    monkeypatch.setenv("WARRENMQ_DEFAULT_PASS", "changed")
    monkeypatch.setenv("WARRENMQ_DEFAULT_VHOST", "other")
    b, log = boot(tmp_path, "3.log")
    with b:
        assert not can_log_in(b.port, "admin", "changed", "apps")
        assert not can_log_in(b.port, "admin", "s3cret", "other")
        assert can_log_in(b.port, "admin", "s3cret", "apps")
        b.stop()
    (line,) = [ln for ln in log.read_text().splitlines() if "ignored" in ln]
    assert " [warning] warrenmq.broker default_user, default_pass, default_vhost given but ignored: the " \
           f"definitions database in {tmp_path / 'data'} already has users and vhosts, and the default user " \
           "and vhost are created only on first boot, as RabbitMQ does" in line


def test_settings_left_at_their_defaults_say_nothing_on_a_later_boot(tmp_path, monkeypatch):
    for k in ("WARRENMQ_DEFAULT_USER", "WARRENMQ_DEFAULT_PASS", "WARRENMQ_DEFAULT_VHOST"):
        monkeypatch.delenv(k, raising=False)
    b, log = boot(tmp_path, "1.log")
    with b:
        assert can_log_in(b.port, "guest", "guest")
        b.stop()
    assert "Created user 'guest'" in log.read_text()
    b, log = boot(tmp_path, "2.log")
    with b:
        b.stop()
    assert "ignored" not in log.read_text() and "Created user" not in log.read_text()
    # given in the config file with a different password: ignored, and said
    conf = tmp_path / "warrenmq.toml"
    conf.write_text('default_pass = "not-guest"\n')
    b, log = boot(tmp_path, "3.log")
    b.extra += ["--config", str(conf)]
    with b:
        assert can_log_in(b.port, "guest", "guest") and not can_log_in(b.port, "guest", "not-guest")
        b.stop()
    assert "default_pass given but ignored" in log.read_text()


@pytest.mark.parametrize("kwargs", [{}, {"default_user": "u", "default_pass": "p"}])
def test_the_embedded_broker_always_boots_first(kwargs):
    from warrenmq.testing.embedded import EmbeddedBroker
    with EmbeddedBroker(**kwargs) as b:
        assert can_log_in(b.port, kwargs.get("default_user", "guest"), kwargs.get("default_pass", "guest"))
