#!/usr/bin/env bash
# Machine instructions the WarrenMQ broker process executes per message, end to end (sockets, protocol,
# domain, management on), measured under valgrind's callgrind, so unaffected by the machine's load:
# the broker runs under callgrind while `warrenmq perf` sends N1 and then N2 messages through it
# (1 -> 1, 16 B; autoack or manual ack with prefetch 100), and (I(N2) - I(N1)) / (N2 - N1) is printed.
# Compare two versions of the source (e.g. a `git worktree add --detach /tmp/base <commit>`):
#     bench/broker_instructions.sh /tmp/base/src autoack; bench/broker_instructions.sh src autoack
# Batching in the client and the broker varies a little with timing: expect about +-0.5%.
set -euo pipefail
src=$(realpath "${1:?usage: $0 SRC_DIR autoack|ack [N1 N2]}"); mode=${2:?autoack or ack}
n1=${3:-20000}; n2=${4:-100000}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
case $mode in autoack) flags=-a ;; ack) flags=-q100 ;; *) echo "mode: autoack or ack" >&2; exit 2 ;; esac

instructions() {  # the broker's instruction count for $1 messages
    local port out data vp
    port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    out=$(mktemp); data=$(mktemp -d)
    PYTHONHASHSEED=0 PYTHONPATH=$src valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$py" -m warrenmq --host 127.0.0.1 --port "$port" --data-dir "$data" --log-level warning \
        --management-port 0 >/dev/null 2>&1 &
    vp=$!
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
    PYTHONPATH=$here/src "$py" -m warrenmq perf --url "amqp://guest:guest@127.0.0.1:$port/%2F" -x1 -y1 -s16 \
        $flags -C "$1" --quiet --json >/dev/null
    kill -TERM $vp; wait $vp || true
    grep -m1 '^summary\|^totals' "$out" | awk '{print $2}'
    rm -rf "$out" "$data"
}
i1=$(instructions "$n1"); i2=$(instructions "$n2")
echo "$mode $src: $(( (i2 - i1) / (n2 - n1) )) instructions per message ($n1: $i1, $n2: $i2)"
