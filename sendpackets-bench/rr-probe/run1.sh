#!/bin/bash
# run1.sh MODE SIZE PATH(veth|lo) CC CONNS SECS -> req/s, CPU us/req, nstat deltas of the namespace
mode=$1; size=$2; path=$3; cc=$4; c=$5; secs=${6:-3}
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_congestion_control=$cc
len=$(stat -c %s ${RRP:-/tmp/rrp}/$size.bin)
port=$((20000 + RANDOM % 20000))
ip netns exec rrprobe ${RRP:-/tmp/rrp}/limit 198.19.77.2 $port $mode ${RRP:-/tmp/rrp}/$size.bin 0 $len 200 240 2>/dev/null &
pid=$!
sleep 0.3
hz=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
ip netns exec rrprobe nstat -n >/dev/null
if [ $path = lo ]; then pre="ip netns exec rrprobe"; else pre=""; fi
out=$($pre wrk -t1 -c$c -d${secs}s --timeout 10s http://198.19.77.2:$port/x)
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
ns=$(ip netns exec rrprobe nstat -s 2>/dev/null | egrep "TcpRetransSegs|TcpExtTCPRcvQDrop|TcpExtPruneCalled|TcpExtRcvPruned|TcpExtTCPOFODrop|TcpOutSegs|TcpExtTCPBacklogDrop|TcpExtTCPSackRecovery|TcpExtTCPLossProbes|TcpExtTCPSpuriousRTOs|TcpExtTCPTimeouts" | awk '{printf "%s=%s ", $1, $2}')
kill $pid; wait $pid 2>/dev/null
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
err=$(echo "$out" | grep -i "socket errors")
echo "$mode $size $path $cc c$c: $rps req/s  $(echo "($t1-$t0)*1000000/$hz/$reqs" | bc -l | xargs printf %.1f) us/req  $err | $ns"
