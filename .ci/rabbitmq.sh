#!/usr/bin/env bash
# Make a reference RabbitMQ available on 127.0.0.1:5672 for tests/differential
# (docs/differential-testing.md): reuse one that is already running, else install
# Debian's rabbitmq-server and start it.  Runs as root on Debian/Ubuntu with access
# to its mirrors.  Prints shell `export` lines for the test run, so use it as
#     eval "$(.ci/rabbitmq.sh)"
# (WARRENMQ_REFERENCE_URL, WARRENMQ_REFERENCE_MQTT and WARRENMQ_REFERENCE_STOMP when its MQTT and STOMP
# plugins are on, and RABBITMQ_NODENAME
# when it had to be set, which the suite's rabbitmqctl calls need too).  All logging goes to stderr.
set -euo pipefail

HOST=127.0.0.1
PORT=${RABBITMQ_NODE_PORT:-5672}  # RabbitMQ's own variable for its AMQP port
URL="amqp://guest:guest@$HOST:$PORT/%2F"

log() { echo "rabbitmq.sh: $*" >&2; }

port_open() {  # a plain TCP connect (bash's /dev/tcp): no client needed
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

ctl_ready() {
    command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl -q await_startup >/dev/null 2>&1
}

# A node this script starts listens for MQTT on MQTT_PORT, not on MQTT's default 1883, which is
# WarrenMQ's default too: a broker a test starts with its defaults must not find the port taken
MQTT_PORT=${REFERENCE_MQTT_PORT:-18830}
# and for STOMP on STOMP_PORT, not on 61613 (WarrenMQ's default STOMP port), for the same reason
STOMP_PORT=${REFERENCE_STOMP_PORT:-16130}

listener_port() {  # the port of the node's listener for protocol $1 (mqtt, stomp), if it has one
    command -v rabbitmq-diagnostics >/dev/null 2>&1 &&
        rabbitmq-diagnostics -q listeners 2>/dev/null | sed -n "s/.*port: \\([0-9]*\\), protocol: $1,.*/\\1/p" | head -n 1
}

emit() {
    echo "export WARRENMQ_REFERENCE_URL='$URL'"
    local mqtt stomp
    # tests/differential/test_mqtt.py and test_stomp.py compare with these listeners live
    mqtt=$(listener_port mqtt || true)
    if [ -n "$mqtt" ]; then
        echo "export WARRENMQ_REFERENCE_MQTT='$HOST:$mqtt'"
    fi
    stomp=$(listener_port stomp || true)
    if [ -n "$stomp" ]; then
        echo "export WARRENMQ_REFERENCE_STOMP='$HOST:$stomp'"
    fi
    if [ -n "${RABBITMQ_NODENAME:-}" ]; then
        echo "export RABBITMQ_NODENAME='$RABBITMQ_NODENAME'"
    fi
}

# The node name defaults to rabbit@<short hostname>; Erlang distribution (and so rabbitmqctl) needs
# it to resolve.  If it does not, use rabbit@localhost for the server and every rabbitmqctl alike.
if [ -z "${RABBITMQ_NODENAME:-}" ] && ! getent hosts "$(hostname -s 2>/dev/null || hostname)" >/dev/null 2>&1; then
    export RABBITMQ_NODENAME=rabbit@localhost
    log "the hostname does not resolve: using RABBITMQ_NODENAME=$RABBITMQ_NODENAME"
fi

# shovels and federation (tests/shovel, tests/federation) need the node's shovel and federation plugins:
# a reused node gets them enabled online (nothing else of it changes), a node this script starts offline
LINK_PLUGINS="rabbitmq_shovel rabbitmq_federation"

if ctl_ready && port_open; then
    log "RabbitMQ is already running on $HOST:$PORT: reusing it"
    rabbitmq-plugins enable $LINK_PLUGINS >&2 || log "could not enable $LINK_PLUGINS on the running node"
    emit
    exit 0
fi
if port_open; then
    log "something listens on $HOST:$PORT but rabbitmqctl cannot reach a running RabbitMQ node;"
    log "the differential suite needs both (it sets policies with rabbitmqctl)"
    exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing rabbitmq-server with apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >&2
fi

# a node this script starts gets the MQTT and STOMP plugins (a reused node does not get them); without
# one the differential cases of its protocol compare with their recording
rabbitmq-plugins enable --offline rabbitmq_mqtt >&2 || log "could not enable rabbitmq_mqtt: MQTT compared with the recording"
rabbitmq-plugins enable --offline $LINK_PLUGINS >&2 || log "could not enable $LINK_PLUGINS: shovel and federation tests will fail"
rabbitmq-plugins enable --offline rabbitmq_stomp >&2 || log "could not enable rabbitmq_stomp: STOMP compared with the recording"

log "starting rabbitmq-server"
# as root the /usr/sbin wrapper switches to the rabbitmq user; the package's postinst does not start it
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-rabbitmq_mqtt tcp_listeners [$MQTT_PORT] -rabbitmq_stomp tcp_listeners [$STOMP_PORT]" \
    rabbitmq-server -detached >&2

# await_startup fails at once while the node has not registered with epmd yet: retry
for _ in $(seq 1 120); do
    if ctl_ready && port_open; then
        log "RabbitMQ $(rabbitmqctl -q version 2>/dev/null || echo '?') is up"
        emit
        exit 0
    fi
    sleep 1
done
log "RabbitMQ did not start within 120 s; see /var/log/rabbitmq/"
exit 1
