#!/bin/bash
# perf1.sh MODE SIZE PATH CC CONNS -> perf report top of the server
mode=$1; size=$2; path=$3; cc=$4; c=$5
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_congestion_control=$cc
len=$(stat -c %s ${RRP:-/tmp/rrp}/$size.bin)
port=$((20000 + RANDOM % 20000))
ip netns exec rrprobe ${RRP:-/tmp/rrp}/limit 198.19.77.2 $port $mode ${RRP:-/tmp/rrp}/$size.bin 0 $len 200 240 2>/dev/null &
pid=$!
sleep 0.3
if [ $path = lo ]; then pre="ip netns exec rrprobe"; else pre=""; fi
$pre wrk -t1 -c$c -d4s --timeout 10s http://198.19.77.2:$port/x > ${RRP:-/tmp/rrp}/wrk.out &
w=$!
sleep 0.5
perf record -q -g -p $pid -o ${RRP:-/tmp/rrp}/perf.$mode.$size.$path.$cc.data -- sleep 2 2>/dev/null >/dev/null
wait $w
kill $pid; wait $pid 2>/dev/null
grep Requests/sec ${RRP:-/tmp/rrp}/wrk.out
perf report -i ${RRP:-/tmp/rrp}/perf.$mode.$size.$path.$cc.data --no-children --stdio -q --percent-limit 2 -g none 2>/dev/null | head -30
