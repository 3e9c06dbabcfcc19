#!/bin/bash
mode=$1; size=$2; path=$3; cc=$4; c=$5
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_congestion_control=$cc
len=$(stat -c %s ${RRP:-/tmp/rrp}/$size.bin)
port=$((20000 + RANDOM % 20000))
ip netns exec rrprobe ${RRP:-/tmp/rrp}/limit 198.19.77.2 $port $mode ${RRP:-/tmp/rrp}/$size.bin 0 $len 200 240 2>/dev/null &
pid=$!
sleep 0.3
if [ $path = lo ]; then pre="ip netns exec rrprobe"; else pre=""; fi
$pre wrk -t1 -c$c -d3s --timeout 10s http://198.19.77.2:$port/x > ${RRP:-/tmp/rrp}/wrk.out &
w=$!
sleep 1.5
ip netns exec rrprobe ss -tinH state established "( sport = :$port )" > ${RRP:-/tmp/rrp}/ss.out
wait $w
kill $pid; wait $pid 2>/dev/null
printf "%s %s %s %s c%s %s req/s: " $mode $size $path $cc $c "$(awk '/Requests\/sec/ {print $2}' ${RRP:-/tmp/rrp}/wrk.out)"
python3 - <<'PY'
import re,statistics as st
t=open('${RRP:-/tmp/rrp}/ss.out').read()
def med(k, conv=float):
    v=[conv(x) for x in re.findall(k, t)]
    return st.median(v) if v else None
def bps(x):
    m={'K':1e3,'M':1e6,'G':1e9}
    return float(x[:-3] if x[-3] in 'KMG' else x[:-2]) * m.get(x[-3],1) if False else None
pr=[float(a)*{'':1,'K':1e3,'M':1e6,'G':1e9}[b] for a,b in re.findall(r'pacing_rate ([\d.]+)([KMG]?)bps', t)]
cw=[int(x) for x in re.findall(r' cwnd:(\d+)', t)]
rtt=[float(x) for x in re.findall(r' rtt:([\d.]+)/', t)]
bw=[float(a)*{'':1,'K':1e3,'M':1e6,'G':1e9}[b] for a,b in re.findall(r'bbr:\(bw:([\d.]+)([KMG]?)bps', t)]
al=len(re.findall('app_limited', t))
print(f"conns={len(cw)} pacing_rate med={st.median(pr)/1e9 if pr else 0:.2f} Gbit/s cwnd med={st.median(cw) if cw else 0} rtt med={st.median(rtt) if rtt else 0} ms bbr bw med={st.median(bw)/1e9 if bw else 0:.2f} Gbit/s app_limited={al}")
PY
