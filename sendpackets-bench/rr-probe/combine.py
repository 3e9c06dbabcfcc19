import re, sys, statistics as st, collections
runs=collections.defaultdict(list)
pat=re.compile(r'rr (\S+) (\S+) c(\d+) round \d+/\d+\s+([\d.]+ [KM]iB) (\S+)\s+([\d.]+) req/s\s+([\d.]+) µs/req\s+([\d.]+) MB/s')
for f in sys.argv[1:]:
    for line in open(f):
        m=pat.search(line)
        if m:
            path,cc,c,size,who,rps,cpu,mbs=m.groups()
            runs[(path,cc,int(c),size,who)].append((float(rps),float(cpu),float(mbs)))
sizes=['1 KiB','16 KiB','64 KiB','256 KiB','1 MiB','8 MiB']
def med(k,i):
    v=runs.get(k); 
    return st.median([x[i] for x in v]) if v else None
out=[]; cnt=collections.Counter()
rows=[]
for path in ['loopback','veth']:
  for cc in ['bbr','reno']:
    for c in [1,64,1000]:
      cells=[]
      for s in sizes:
        k=lambda w:(path,cc,c,s,w)
        big = (c==1000 and s=='8 MiB')
        i = 2 if big else 0
        lm,lmo,lib,sv,ng,sw=[med(k(w),i) for w in ['limit-mem','limit-more','lib','serve','nginx','sws']]
        if sv is None: cells.append('–'); continue
        best=max(lm,lmo)
        r=sv/best
        cells.append(f"{r:.2f}")
        if not big:
            cnt['cells']+=1; cnt['serve>=0.9']+=r>=0.9; cnt['lib>=0.9']+=lib/best>=0.9
            cnt['>nginx']+=sv>=ng; cnt['>sws']+=sv>=sw
            cs,cn,cw=med(k('serve'),1),med(k('nginx'),1),med(k('sws'),1)
            cnt['cpu<nginx']+=cs<cn; cnt['cpu<sws']+=cs<cw
            rows.append((path,cc,c,s,r,sv/ng,sv/sw,lib/best))
      n=len(runs[(path,cc,c,'1 KiB','serve')])
      out.append(f"| {path}, {cc} | {c:,} | "+" | ".join(cells)+f" |")
print("\n".join(out)); print(cnt)
for s in sizes:
    v=[r for r in rows if r[3]==s]
    if v: print(s, 'serve>=0.9', sum(r[4]>=0.9 for r in v),'/',len(v),'median',round(st.median(r[4] for r in v),2),'min',round(min(r[4] for r in v),2), 'nginx-loss', [ (r[0],r[1],r[2],round(r[5],2)) for r in v if r[5]<1], 'sws-loss', [ (r[0],r[1],r[2],round(r[6],2)) for r in v if r[6]<1])
print('runs per cell', collections.Counter(len(v) for v in runs.values()))
if len(sys.argv)>1:
  print("size, path cc c: mem / more / lib / serve req/s (cpu)")
  for s in ['256 KiB','1 MiB','8 MiB']:
    for path in ['loopback','veth']:
      for cc in ['bbr','reno']:
        for c in [1,64,1000]:
          k=lambda w:(path,cc,c,s,w)
          i=2 if c==1000 else 0
          vals=[(med(k(w),i),med(k(w),1)) for w in ['limit-mem','limit-more','lib','serve']]
          print(s,path,cc,c, "  ".join(f"{a:.0f}({b:.0f})" for a,b in vals), "BEST=mem" if vals[0][0]>vals[1][0] else "")
if len(sys.argv)>1:
  ok=0; n=0; tbl=[]
  for path in ['loopback','veth']:
    for cc in ['bbr','reno']:
      for c in [1,64,1000]:
        cells=[]
        for s in sizes:
          k=lambda w:(path,cc,c,s,w)
          big=(c==1000 and s=='8 MiB'); i=2 if big else 0
          lm,lmo,sv=[med(k(w),i) for w in ['limit-mem','limit-more','serve']]
          ref = max(lm,lmo) if s in ('1 KiB','16 KiB') else lmo
          r=sv/ref; cells.append(f"{r:.2f}")
          if not big: n+=1; ok+= r>=0.9
        tbl.append(f"| {path}, {cc} | {c:,} | "+" | ".join(cells)+" |")
  print("\n".join(tbl)); print("fair ceiling >=0.9:", ok, "/", n)
