#!/usr/bin/env python3
"""Turn benches/load/run.sh's raw.tsv (+ meta and memory key=values) into results.md.

Every cell is the median over the rounds whose run passed (all answers 200, no socket
error, full bodies); a cell with any failed run is marked FAIL with the reason. Ratios are
tollgate / peer from the same run: CPU µs per request and p99 below 1 mean tollgate is
cheaper or faster, req/s above 1 means it serves more.
"""

import argparse
import csv
import statistics
from collections import defaultdict

VARIANTS = [
    ("h1", "HTTP/1.1, plain"),
    ("tls", "HTTP/1.1 over TLS"),
    ("h2", "HTTP/2 over TLS"),
]
SIZES = [("1k", "1 KiB"), ("64k", "64 KiB"), ("1m", "1 MiB")]
TARGETS = ["nginx", "nginx-securelink", "haproxy", "haproxy-jwt",
           "tollgate-eddsa", "tollgate-hs256", "tollgate-off",
           "nginx-cache", "tollgate-cache"]
# The cache-hit pair (LOAD_ONLY=cache): whether their answers came from the cache shows
# in the origin's request count during their runs.
CACHE_TARGETS = ["nginx-cache", "tollgate-cache"]
# A cell whose CPU per request varies by more than this fraction of its median between
# rounds is marked: something else used the machine, or the target is unsteady.
SPREAD = 0.25

PAIRS = [
    ("tollgate-eddsa", "nginx"),
    ("tollgate-eddsa", "haproxy"),
    ("tollgate-off", "nginx"),
    ("tollgate-hs256", "haproxy-jwt"),
    ("tollgate-eddsa", "nginx-securelink"),
    ("tollgate-cache", "nginx-cache"),
]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def read_memory(path):
    """Lines `<name> <key>=<value>` -> {name: {key: value}}."""
    out = defaultdict(dict)
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            name = parts[0]
            for kv in parts[1:]:
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    out[name][k] = v
    return out


def total(xs):
    """Sum of the numbers among xs; None when there is none (an older raw.tsv)."""
    xs = [num(x) for x in xs]
    xs = [x for x in xs if x is not None]
    return sum(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ms(us):
    return "–" if us is None else f"{us / 1000:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--memory", required=True)
    a = ap.parse_args()
    meta = read_kv(a.meta)
    mem = read_memory(a.memory)

    runs = defaultdict(list)  # (phase, variant, size, target) -> rows
    with open(a.raw) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            runs[(row["phase"], row["variant"], row["size"], row["target"])].append(row)

    def cell(variant, size, target):
        sat = runs.get(("sat", variant, size, target), [])
        lat = runs.get(("lat", variant, size, target), [])
        if not sat and not lat:
            return None
        ok_sat = [r for r in sat if r["status"] == "ok"]
        ok_lat = [r for r in lat if r["status"] == "ok"]
        fails = sorted({r["status"] for r in sat + lat if r["status"] != "ok"})
        cpus = [x for x in (num(r["cpu_us_per_req"]) for r in ok_sat) if x is not None]
        spread = ""
        if len(cpus) >= 2 and (max(cpus) - min(cpus)) > SPREAD * statistics.median(cpus):
            spread = f"rounds disagree: CPU {min(cpus):.1f}–{max(cpus):.1f}"
        return {
            "spread": spread,
            "rps": median(num(r["req_s"]) for r in ok_sat),
            "cpu": median(num(r["cpu_us_per_req"]) for r in ok_sat),
            "p50": median(num(r["p50_us"]) for r in ok_lat),
            "p99": median(num(r["p99_us"]) for r in ok_lat),
            "cpu_rate": median(num(r["cpu_us_per_req"]) for r in ok_lat),
            # Summed over every run of the cell (saturated and fixed-rate), with the
            # answers they counted: the share of requests that reached the origin.
            "origin": total(r.get("origin_reqs") for r in sat + lat),
            "cache_hits": total(r.get("cache_hits") for r in sat + lat),
            "answers": total(r.get("requests") for r in sat + lat),
            "rate": lat[0]["rate"] if lat else None,
            "n_sat": len(sat),
            "n_lat": len(lat),
            "fail": "; ".join(fails),
        }

    out = []
    w = out.append
    w("# tollgate load benchmark: results")
    w("")
    for key, label in [("date", "Date"), ("commit", "Commit"), ("machine", "Machine"),
                       ("kernel", "Kernel"), ("os", "OS"), ("command", "Command"),
                       ("pinning", "Pinning"), ("settings", "Settings"),
                       ("versions", "Versions"),
                       ("nginx_proxy_buffer_size", "nginx proxy_buffer_size"),
                       ("tollgate_threads", "tollgate threads (pinned to one CPU)"),
                       ("tls", "TLS negotiated (curl/OpenSSL, like wrk)"),
                       ("cache", "Cache probes (nginx: X-Cache-Status; tollgate: an Age header)"),
                       ("timings", "Run time")]:
        if meta.get(key):
            w(f"- **{label}:** {meta[key]}")
    w("")
    w("Each cell: median over the rounds (a cell whose rounds differ by more than "
      f"{SPREAD:.0%} in CPU µs/req says so). req/s and CPU µs/req from the saturated run "
      "(CPU = utime + stime of the proxy's processes, origin excluded); p50/p99 from the "
      "fixed-rate run (coordinated-omission corrected), at the same rate for every target "
      "of a table row group.")

    cells = {}
    for v, vlabel in VARIANTS:
        rows = []
        for s, slabel in SIZES:
            for t in TARGETS:
                c = cell(v, s, t)
                if c is None:
                    continue
                cells[(v, s, t)] = c
                rows.append((s, slabel, t, c))
        if not rows:
            continue
        w("")
        w(f"## {vlabel}")
        w("")
        w("| size | target | req/s (saturated) | CPU µs/req | fixed rate req/s | p50 ms | p99 ms | CPU µs/req at the rate | |")
        w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for s, slabel, t, c in rows:
            mark = "; ".join(x for x in (f"FAIL: {c['fail']}" if c["fail"] else "", c["spread"]) if x)
            w(f"| {slabel} | {t} | {fmt(c['rps'])} | {fmt(c['cpu'], 1)} | "
              f"{fmt(num(c['rate']))} | {ms(c['p50'])} | {ms(c['p99'])} | {fmt(c['cpu_rate'], 1)} | {mark} |")

    w("")
    w("## Ratios tollgate / peer (same run)")
    w("")
    w("CPU/req and p99: below 1.00 means tollgate is cheaper / faster. req/s: above 1.00 "
      "means tollgate serves more on the shared core.")
    w("")
    w("| variant | size | tollgate / peer | CPU/req | p99 | req/s |")
    w("| --- | --- | --- | ---: | ---: | ---: |")
    for v, vlabel in VARIANTS:
        for s, slabel in SIZES:
            for tg, peer in PAIRS:
                x, y = cells.get((v, s, tg)), cells.get((v, s, peer))
                if not x or not y:
                    continue
                r = [ratio(x[k], y[k]) for k in ("cpu", "p99", "rps")]
                flag = " (FAIL in a run)" if x["fail"] or y["fail"] else ""
                if not flag and (x["spread"] or y["spread"]):
                    flag = " (rounds disagree)"
                w(f"| {v} | {slabel} | {tg} / {peer}{flag} | {fmt(r[0], 2)} | {fmt(r[1], 2)} | {fmt(r[2], 2)} |")

    w("")
    w("## The performance targets")
    w("")
    w("| target | measured | met |")
    w("| --- | ---: | --- |")

    def target_row(label, value, limit, *cs):
        if value is None:
            w(f"| {label} | not measured | – |")
            return
        note = " (rounds disagree)" if any(c and c["spread"] for c in cs) else ""
        w(f"| {label} | {value:.2f}{note} | {'yes' if value <= limit else 'no'} |")

    for s, slabel in SIZES:
        x, y = cells.get(("h1", s, "tollgate-eddsa")), cells.get(("h1", s, "nginx"))
        target_row(f"CPU/req tollgate-eddsa ≤ 0.9 × nginx, HTTP/1.1, {slabel}",
                   ratio(x and x["cpu"], y and y["cpu"]), 0.9, x, y)
    for s, slabel in SIZES:
        x, y = cells.get(("h1", s, "tollgate-eddsa")), cells.get(("h1", s, "nginx"))
        target_row(f"p99 tollgate-eddsa ≤ nginx at the fixed rate, HTTP/1.1, {slabel}",
                   ratio(x and x["p99"], y and y["p99"]), 1.0)
    x, y = cells.get(("tls", "64k", "tollgate-eddsa")), cells.get(("tls", "64k", "nginx"))
    target_row("CPU/req tollgate-eddsa ≤ 0.5 × nginx, TLS, 64 KiB",
               ratio(x and x["cpu"], y and y["cpu"]), 0.5, x, y)
    for v, s, slabel, limit in [("h1", "1k", "1 KiB", 0.9), ("h1", "64k", "64 KiB", 0.9),
                                ("tls", "64k", "64 KiB", 0.6), ("tls", "1m", "1 MiB", 0.6)]:
        x, y = cells.get((v, s, "tollgate-cache")), cells.get((v, s, "nginx-cache"))
        if x or y:
            proto = "HTTP/1.1" if v == "h1" else "TLS"
            target_row(f"cache hit: CPU/req tollgate-cache ≤ {limit} × nginx-cache, {proto}, {slabel}",
                       ratio(x and x["cpu"], y and y["cpu"]), limit, x, y)
    tg = mem.get("tollgate")
    n_idle = int(meta.get("idle_conns", "0"))
    if tg and tg.get("idle_rss_with_idle_kib"):
        rss = int(tg["idle_rss_with_idle_kib"]) / 1024
        met = ("yes" if rss < 150 else "no") if n_idle == 10000 else f"– (measured with {n_idle:,})"
        w(f"| tollgate RSS with 10,000 idle keep-alive connections < 150 MiB | {rss:.1f} MiB | {met} |")
    else:
        w("| tollgate RSS with 10,000 idle keep-alive connections < 150 MiB | not measured | – |")

    cache_rows = [(v, s, t, cells[(v, s, t)]) for v, _ in VARIANTS for s, _ in SIZES
                  for t in CACHE_TARGETS if (v, s, t) in cells]
    if cache_rows:
        w("")
        w("## Cache hits: what reached the origin")
        w("")
        w("Requests the origin counted (its stub_status) during the cell's runs, saturated and "
          "fixed-rate, against the answers of those runs. A cache target serving hits sends "
          "the origin nothing; one request per answer means no cache. tollgate-cache's own "
          "count of hits (`tollgate_cache_requests_total{result=\"hit\"}`) is beside it.")
        w("")
        w("| variant | size | target | answers | origin requests | per 1,000 answers | tollgate cache hits |")
        w("| --- | --- | --- | ---: | ---: | ---: | ---: |")
        labels = dict(SIZES)
        for v, s, t, c in cache_rows:
            per = None if c["origin"] is None or not c["answers"] else c["origin"] * 1000 / c["answers"]
            hits = fmt(c["cache_hits"]) if t == "tollgate-cache" else "–"
            w(f"| {v} | {labels[s]} | {t} | {fmt(c['answers'])} | {fmt(c['origin'])} | {fmt(per, 2)} | {hits} |")

    if mem:
        n_idle = int(meta.get("idle_conns", "0"))
        n_streams = int(meta.get("streams", "0"))
        names = [n for n in ("tollgate", "nginx") if n in mem]
        w("")
        w("## Memory (fresh processes, HTTP/1.1 plain, RSS summed over the proxy's processes)")
        w("")
        w("| | " + " | ".join(names) + " |")
        w("| --- |" + " ---: |" * len(names))

        def row(label, f):
            vals = []
            for n in names:
                try:
                    vals.append(f(mem[n]))
                except (KeyError, ValueError, ZeroDivisionError):
                    vals.append("–")
            w(f"| {label} | " + " | ".join(vals) + " |")

        mib = lambda kib: f"{int(kib) / 1024:.1f} MiB"
        row("RSS idle (fresh, after one request)", lambda m: mib(m["idle_kib"]))
        row(f"RSS with {n_streams} stalled 1 MiB streams", lambda m: mib(m["streams_rss_with_streams_kib"]))
        row("… growth per active 1 MiB stream",
            lambda m: f"{(int(m['streams_rss_with_streams_kib']) - int(m['streams_rss_before_kib'])) / int(m['streams_streams']):.1f} KiB")
        row("… meanwhile in the kernel's send queues (not RSS), per stream",
            lambda m: f"{int(m['streams_kernel_send_queue_kib']) / int(m['streams_streams']):.0f} KiB")
        row(f"RSS with {n_idle:,} idle keep-alive connections (fresh process)",
            lambda m: mib(m["idle_rss_with_idle_kib"]))
        row("… per idle connection",
            lambda m: f"{(int(m['idle_rss_with_idle_kib']) - int(m['idle_rss_before_kib'])) / int(m['idle_opened']):.2f} KiB")
        row("open connections the gate counted (tollgate_open_connections)",
            lambda m: m["idle_gauge_open_connections"])
        row("RSS once those connections closed", lambda m: mib(m["idle_rss_after_close_kib"]))
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
