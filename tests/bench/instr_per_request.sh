#!/usr/bin/env bash
# instr_per_request.sh BUILD [N [SPOKE_OPTION...]]: instructions spoke
# spends per pipelined GET /hello, counted by valgrind's callgrind
# (repeatable, unlike wall time): one loop, one connection, N requests 16
# deep, minus a run of N/10, divided by the difference. Options after N
# go to spoke. Compare two builds of spoke with it:
#   tests/bench/instr_per_request.sh build-old; ... build
#   tests/bench/instr_per_request.sh build-off 22000 --stall-warn 0
set -euo pipefail
build=${1:?usage: instr_per_request.sh BUILD [N [SPOKE_OPTION...]]}
n=${2:-22000}
shift $(( $# < 2 ? $# : 2 ))
opts=("$@")
small=$((n / 11))
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/plugins"
cp "$build/plugins/hello.so" "$work/plugins/"

client() { # PORT COUNT: sends COUNT pipelined requests, reads the answers
  python3 - "$1" "$2" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
sent = got = 0
tail = b""
while got < n:
    k = min(16, n - sent)
    if k > 0 and sent - got < 64:
        s.sendall(req * k)
        sent += k
    data = s.recv(65536)
    if not data:
        sys.exit("connection closed after %d responses" % got)
    data = tail + data
    got += data.count(b"HTTP/1.1 200")
    tail = data[-11:]  # a match cut in two is counted once, whole
PY
}

count() { # COUNT -> total instructions of one server run
  local out="$work/cg.out" log="$work/log" port
  rm -f "$out" "$log"
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$build/spoke" --processes 0 --listen 127.0.0.1:0 \
    --plugins "$work/plugins" --loops 1 --workers 1 --max-requests 1000000000 ${opts[@]+"${opts[@]}"} \
    >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  client "$port" "$1"
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/^summary: //p' "$out"
}

a=$(count "$small")
b=$(count "$n")
echo "$build${opts[*]+ ${opts[*]}}: $(( (b - a) / (n - small) ))" \
     "instructions per request" \
     "($small and $n requests: $a and $b)"
