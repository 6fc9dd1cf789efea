"""Pools wrk runs taken in slices (bench/lib.sh `interleaved`) into one result.

Each argument is a file bench/common.lua wrote: requests, errors, duration (µs), and the
latency (µs) at 1,000 evenly spaced quantiles. Prints "rps p50_ms p99_ms p999_ms errors": requests per second over all
slices, and percentiles of the slices' quantiles pooled, each slice's weighted by its
request count (a slice with twice the requests stands for twice the latencies).
"""
import sys

requests = duration = errors = 0
pooled = []  # (latency µs, weight)
for path in sys.argv[1:]:
    n, failed, us, *qs = (int(x) for x in open(path).read().split())
    requests += n
    errors += failed
    duration += us
    pooled += [(q, n / len(qs)) for q in qs]
pooled.sort()
total = sum(w for _, w in pooled)


def percentile(p):
    seen = 0.0
    for q, w in pooled:
        seen += w
        if seen >= total * p / 100:
            return q / 1000
    return pooled[-1][0] / 1000


print(f"{requests / (duration / 1e6):.0f} {percentile(50):.2f} {percentile(99):.2f} "
      f"{percentile(99.9):.2f} {errors}")
