#!/bin/bash
# receiver-side memory per byte queued (wrk's sockets on the host) during MODE 8m veth c1000
mode=$1; c=${2:-1000}; size=${3:-8m}
ip netns exec rrprobe sysctl -qw net.ipv4.tcp_congestion_control=bbr
len=$(stat -c %s ${RRP:-/tmp/rrp}/$size.bin)
port=$((20000 + RANDOM % 20000))
ip netns exec rrprobe ${RRP:-/tmp/rrp}/limit 198.19.77.2 $port $mode ${RRP:-/tmp/rrp}/$size.bin 0 $len 200 240 2>/dev/null &
pid=$!
sleep 0.3
wrk -t1 -c$c -d4s --timeout 10s http://198.19.77.2:$port/x > ${RRP:-/tmp/rrp}/wrk.out &
w=$!
sleep 2
ss -tmnH state established "( dport = :$port )" > ${RRP:-/tmp/rrp}/ssr.out
grep -E "^TCP:" /proc/net/sockstat
wait $w; kill $pid; wait $pid 2>/dev/null
python3 - "$mode" <<'PY'
import re,sys
t=open('${RRP:-/tmp/rrp}/ssr.out').read().split('\n')
q=0; r=0; n=0
for i,l in enumerate(t):
    m=re.match(r'\s*(\d+)\s+(\d+)\s', l)
    if m:
        q+=int(m.group(1)); n+=1
    m2=re.search(r'skmem:\(r(\d+),rb(\d+)', l)
    if m2: r+=int(m2.group(1))
print(f"{sys.argv[1]}: {n} sockets, Recv-Q {q/1e6:.1f} MB, rmem_alloc {r/1e6:.1f} MB, ratio {r/max(q,1):.2f}")
PY
