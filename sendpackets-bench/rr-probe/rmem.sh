#!/bin/bash
# rmem.sh MODE RMEM_MAX WMEM_MAX: 1000 x 8 MiB, server in rrprobe (bbr, tcp_wmem max WMEM_MAX), wrk in rrprobec (tcp_rmem max RMEM_MAX)
mode=$1; rmax=$2; wmax=$3; secs=${4:-6}
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_congestion_control=bbr
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_wmem="4096 16384 $wmax"
ip netns exec rrprobec sysctl -qw net.ipv4.tcp_rmem="4096 131072 $rmax"
port=$((20000 + RANDOM % 20000))
ip netns exec rrprobe ${RRP:-/tmp/rrp}/limit 198.19.78.1 $port $mode ${RRP:-/tmp/rrp}/8m.bin 0 8388608 200 240 2>/dev/null &
pid=$!
sleep 0.3
snap() { ip netns exec $1 nstat -az 2>/dev/null | awk '{print $1, $2}'; }
snap rrprobe > ${RRP:-/tmp/rrp}/s0; snap rrprobec > ${RRP:-/tmp/rrp}/c0
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
ip netns exec rrprobec wrk -t1 -c1000 -d${secs}s --timeout 10s http://198.19.78.1:$port/x > ${RRP:-/tmp/rrp}/wrk.out &
w=$!
sleep 3; m=$(awk '/^TCP:/ {print $NF}' /proc/net/sockstat)
wait $w
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
kill $pid; wait $pid 2>/dev/null
snap rrprobe > ${RRP:-/tmp/rrp}/s1; snap rrprobec > ${RRP:-/tmp/rrp}/c1
d() { join $1 $2 | awk -v pat="$3" '$1 ~ pat && $3-$2 > 0 {printf "%s=%d ", $1, $3-$2}'; }
echo "$mode rmem_max=$rmax wmem_max=$wmax: $(awk '/Transfer\/sec/ {print $2}' ${RRP:-/tmp/rrp}/wrk.out)/s, server CPU $(( (t1-t0) ))0 ms, tcp mem at 3 s: $m pages | sender: $(d ${RRP:-/tmp/rrp}/s0 ${RRP:-/tmp/rrp}/s1 'TcpRetransSegs|TCPTimeouts|TCPMemoryPressures') | receivers: $(d ${RRP:-/tmp/rrp}/c0 ${RRP:-/tmp/rrp}/c1 'PruneCalled|RcvQDrop|MemoryPressures|OFODrop|RcvPruned')"
