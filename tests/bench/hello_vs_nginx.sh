#!/usr/bin/env bash
# hello_vs_nginx.sh: /hello requests/s and p99, spoke (--loops 2) against
# nginx (worker_processes 2, return 200 "Hello, World!"), same machine,
# same run, alternated A B A B. Prints each round and the medians/ratio.
#   tests/bench/hello_vs_nginx.sh [ROUNDS] [DURATION]   (default 3, 10s)
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light); run after
# `make build`. Load goes to 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
DUR=${2:-10s}
SPOKE_PORT=18180
NGINX_PORT=18181
work=$(mktemp -d)
trap 'kill $spoke_pid 2>/dev/null || true; [ -f $work/nginx.pid ] && kill $(cat $work/nginx.pid) 2>/dev/null || true; rm -rf $work' EXIT

cat > $work/nginx.conf <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    location = /hello { default_type text/plain; return 200 "Hello, World!"; }
  }
}
NGX
mkdir -p $work/plugins && cp build/plugins/hello.so $work/plugins/
build/spoke --listen 127.0.0.1:$SPOKE_PORT --plugins $work/plugins --loops 2 --log-level warn 2>$work/spoke.log &
spoke_pid=$!
nginx -c $work/nginx.conf -p $work
sleep 0.5

run() { # name port -> "rps p99ms"
  wrk -t1 -c64 -d"$DUR" --latency "http://127.0.0.1:$2/hello" > $work/wrk.out
  rps=$(awk '/Requests\/sec/ {print $2}' $work/wrk.out)
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' $work/wrk.out)
  echo "$rps $p99"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: > $work/spoke.res; : > $work/nginx.res
for r in $(seq "$ROUNDS"); do
  s=$(run spoke $SPOKE_PORT); n=$(run nginx $NGINX_PORT)
  echo "round $r: spoke $s | nginx $n  (req/s p99ms)"
  echo "$s" >> $work/spoke.res; echo "$n" >> $work/nginx.res
done
s_rps=$(cut -d' ' -f1 $work/spoke.res | median); n_rps=$(cut -d' ' -f1 $work/nginx.res | median)
s_p99=$(cut -d' ' -f2 $work/spoke.res | median); n_p99=$(cut -d' ' -f2 $work/nginx.res | median)
echo "median: spoke $s_rps req/s p99 ${s_p99}ms | nginx $n_rps req/s p99 ${n_p99}ms"
awk -v a="$s_rps" -v b="$n_rps" -v c="$s_p99" -v d="$n_p99" 'BEGIN {printf "ratio spoke/nginx: throughput %.2f, p99 %.2f\n", a/b, c/d}'
