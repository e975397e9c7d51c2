-- benches/load/run.sh: one machine-readable line at the end of a wrk run. Request
-- headers come from wrk's -H. There is deliberately no response() hook: with one, wrk
-- hands every body to Lua (a 1 MiB string per answer) and the client becomes the
-- bottleneck. wrk counts answers with status >= 400 in errors.status; run.sh also checks
-- the bytes per answer against the file size, which catches redirects and empty answers.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d bad_status=%d duration_us=%d bytes=%d socket_errors=%d\n",
    summary.requests, e.status, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout))
end
