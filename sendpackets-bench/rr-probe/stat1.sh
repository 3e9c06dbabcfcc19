#!/bin/bash
# stat1.sh MODE SIZE PATH CC CONNS -> events per request of the server process
mode=$1; size=$2; path=$3; cc=$4; c=$5
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_congestion_control=$cc
len=$(stat -c %s ${RRP:-/tmp/rrp}/$size.bin)
port=$((20000 + RANDOM % 20000))
ip netns exec rrprobe ${RRP:-/tmp/rrp}/limit 198.19.77.2 $port $mode ${RRP:-/tmp/rrp}/$size.bin 0 $len 200 240 2>/dev/null &
pid=$!
sleep 0.3
if [ $path = lo ]; then pre="ip netns exec rrprobe"; else pre=""; fi
perf stat -x, -e 'timer:hrtimer_start,timer:hrtimer_expire_entry,irq:softirq_entry,sched:sched_switch,raw_syscalls:sys_enter,tcp:tcp_retransmit_skb' -p $pid -o ${RRP:-/tmp/rrp}/stat.out -- sleep 3.2 &
s=$!
$pre wrk -t1 -c$c -d3s --timeout 10s http://198.19.77.2:$port/x > ${RRP:-/tmp/rrp}/wrk.out
wait $s
kill $pid; wait $pid 2>/dev/null
reqs=$(awk '/requests in/ {print $1}' ${RRP:-/tmp/rrp}/wrk.out)
printf "%s %s %s %s c%s: %s req/s; per request: " $mode $size $path $cc $c "$(awk '/Requests\/sec/ {print $2}' ${RRP:-/tmp/rrp}/wrk.out)"
grep -v '^#' ${RRP:-/tmp/rrp}/stat.out | grep , | awk -F, -v r=$reqs '{printf "%s=%.2f ", $3, $1/r}'; echo
