#!/usr/bin/env bash
# Benchmark (not a test, not run by CI): issuing tokens through the BlendVision endpoint
# `POST /bv/cms/v1/resources/tokens` of a release build.
#
#   1. installs wrk with apt-get if it is missing; builds tollgate (cargo build --release)
#      unless TOLLGATE_BIN points at a binary;
#   2. on a fresh copy of config/tollgate.toml in a temp dir, with the CLI: an org, a
#      project, a resource and an API token;
#   3. starts `tollgate serve` on loopback (ephemeral ports), pinned to CPU 0 with
#      taskset when there are two or more CPUs (tokio then runs one worker thread);
#   4. checks one issue with curl, then runs
#        wrk -t1 -c8 -d10s --latency -s <lua: the JSON body, Authorization, x-bv-org-id>
#      pinned to CPU 1; the Lua script counts the answers by status;
#   5. prints p50 and p99 latency and tokens/s (200 answers per second), checks that
#      every answer was a 2xx and that a final curl still gets a token, and writes the
#      numbers to target/bench-issue.txt.
#
# Usage: bash scripts/bench-issue.sh           (from any directory)
# Env:   TOLLGATE_BIN         use this binary instead of building one (a release build!)
#        BENCH_DURATION       wrk -d (default 10s)
#        BENCH_CONNECTIONS    wrk -c (default 8)
#        BENCH_THREADS        wrk -t (default 1)
#        BENCH_KEEP_TMP=1     keep the temp dir (server logs, wrk output)
# Exits non-zero if the server failed to start, any answer was not 2xx, or wrk had
# socket errors.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)
if [[ -n ${TOLLGATE_BIN:-} && $TOLLGATE_BIN != /* && -e $TOLLGATE_BIN ]]; then
  TOLLGATE_BIN="$PWD/$TOLLGATE_BIN"
fi
cd "$repo_root"

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-8}
threads=${BENCH_THREADS:-1}
startup_timeout_s=30
curl_timeout_s=10
out_file="${CARGO_TARGET_DIR:-$repo_root/target}/bench-issue.txt"

export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export NO_PROXY="$no_proxy"

say() { printf 'bench-issue: %s\n' "$*"; }
die() { say "FATAL: $*" >&2; exit 2; }

# ------------------------------------------------------------ prerequisites
need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]} with apt-get"
    if ! apt_log=$( { apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } </dev/null 2>&1); then
      printf '%s\n' "$apt_log" >&2
      die "apt-get install ${need_apt[*]} failed"
    fi
  else
    die "${need_apt[*]} not found (apt-get install -y ${need_apt[*]})"
  fi
fi
command -v timeout >/dev/null 2>&1 || die "coreutils timeout not found"

if [[ -n ${TOLLGATE_BIN:-} ]]; then
  bin=$TOLLGATE_BIN
else
  say "building tollgate (cargo build --release)"
  cargo build --release
  bin="${CARGO_TARGET_DIR:-$repo_root/target}/release/tollgate"
fi
[[ -x $bin ]] || die "tollgate binary not found or not executable: $bin"

# Pin the server and wrk to different CPUs when there are at least two.
cpus=$(nproc 2>/dev/null || echo 1)
server_pin=()
wrk_pin=()
pinning="none (taskset missing or fewer than 2 CPUs)"
if command -v taskset >/dev/null 2>&1 && [[ $cpus -ge 2 ]]; then
  server_pin=(taskset -c 0)
  wrk_pin=(taskset -c 1)
  pinning="server on CPU 0, wrk on CPU 1"
fi

# --------------------------------------------------- workspace + cleanup trap
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
mkdir "$tmp/config"
cp config/tollgate.toml "$tmp/config/tollgate.toml"
ln -s "$repo_root/sample" "$tmp/sample"
config="$tmp/config/tollgate.toml"
server_pid=""
wrk_pid=""

cleanup() {
  local rc=$?
  for pid in "$wrk_pid" "$server_pid"; do
    [[ -n $pid ]] || continue
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    echo "----- tollgate stderr (last 40 lines) -----" >&2
    tail -n 40 "$tmp/server.err" 2>/dev/null >&2 || true
  fi
  if [[ -n ${BENCH_KEEP_TMP:-} ]]; then say "kept $tmp" >&2; else rm -rf -- "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ state
cli() { timeout 60 "$bin" "$@" --config "$config" </dev/null; }
org=bench-org
cli org add --id "$org" >/dev/null
cli project add --id bench-project --org "$org" >/dev/null
cli resource add --id bench-film --type vod --org "$org" --project bench-project >/dev/null
api_token=$(cli api-token create --org "$org" | sed -n 's/^ *"token": *"\([^"]*\)".*/\1/p')
[[ $api_token =~ ^[A-Za-z0-9_-]+$ ]] || die "api-token create printed no token"

body='{"resource_id":"bench-film","resource_type":"RESOURCE_TYPE_VOD","customer_id":"bench-customer","customer_name":"Bench Customer","expires_in":"3600s"}'

# ----------------------------------------------------------------- server
"${server_pin[@]}" "$bin" serve --config "$config" \
  --edge-tls-listen 127.0.0.1:0 --edge-plain-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
server_pid=$!
admin=""
for _ in $(seq 1 $((startup_timeout_s * 10))); do
  kill -0 "$server_pid" 2>/dev/null || { server_pid=""; die "tollgate exited before it was ready"; }
  admin=$(sed -n 's/^tollgate listening: .*admin=\([^ ]*\).*/\1/p' "$tmp/server.out" | head -n 1)
  [[ -n $admin ]] && break
  sleep 0.1
done
[[ -n $admin ]] || die "no 'tollgate listening:' line within ${startup_timeout_s}s"
url="http://$admin/bv/cms/v1/resources/tokens"
say "server pid $server_pid, admin=$admin; $pinning"

issue_once() { # -> HTTP status; body in $tmp/issue.json
  curl -sS --noproxy '*' --max-time "$curl_timeout_s" -o "$tmp/issue.json" -w '%{http_code}' \
    -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $api_token" \
    -H "x-bv-org-id: $org" --data "$body" "$url"
}
status=$(issue_once) || die "curl failed"
if [[ $status != 200 ]] || ! grep -q '"token":"' "$tmp/issue.json"; then
  die "a single issue before the run got HTTP $status: $(head -c 300 "$tmp/issue.json")"
fi

# -------------------------------------------------------------------- wrk
lua_quote() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
cat >"$tmp/issue.lua" <<EOF
-- POST the BlendVision body; count answers by status; report in done().
wrk.method = "POST"
wrk.body = $(lua_quote "$body")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = $(lua_quote "Bearer $api_token")
wrk.headers["x-bv-org-id"] = $(lua_quote "$org")

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local good, nonok = 0, 0
  for _, t in ipairs(threads) do good = good + t:get("ok"); nonok = nonok + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    "BENCH ok=%d non2xx=%d requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f socket_errors=%d\n",
    good, nonok, summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect + e.read + e.write + e.timeout))
end
EOF

secs=${duration%s}
[[ $secs =~ ^[0-9]+$ ]] || secs=60
say "wrk -t$threads -c$connections -d$duration --latency -s issue.lua $url"
"${wrk_pin[@]}" timeout $((secs + 60)) wrk -t"$threads" -c"$connections" -d"$duration" --latency \
  -s "$tmp/issue.lua" "$url" >"$tmp/wrk.out" 2>&1 &
wrk_pid=$!
wrk_rc=0
wait "$wrk_pid" || wrk_rc=$?
wrk_pid=""
cat "$tmp/wrk.out"
[[ $wrk_rc -eq 0 ]] || die "wrk exited $wrk_rc"

line=$(grep '^BENCH ' "$tmp/wrk.out" | tail -n 1)
[[ -n $line ]] || die "no BENCH line from the Lua done() hook"
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" ${line#BENCH }"; }
ok=$(field ok); non2xx=$(field non2xx); duration_us=$(field duration_us)
p50=$(field p50_us); p90=$(field p90_us); p99=$(field p99_us); max=$(field max_us)
socket_errors=$(field socket_errors)
rate=$(awk -v n="$ok" -v d="$duration_us" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }

# ------------------------------------------------------------- afterwards
status=$(issue_once) || status="curl failed"
final_ok=no
if [[ $status == 200 ]] && grep -q '"token":"' "$tmp/issue.json"; then final_ok=yes; fi
alive=no
if kill -0 "$server_pid" 2>/dev/null; then alive=yes; fi

rev=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo_root" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | head -n 1)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
mkdir -p "$(dirname "$out_file")"
{
  echo "bench-issue: POST /bv/cms/v1/resources/tokens (BlendVision), release build"
  echo "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:      $rev${dirty:+ (with uncommitted changes in src/ or Cargo.*)}"
  echo "machine:     $cpus CPUs${cpu_model:+ ($cpu_model)}, $(uname -sr)"
  echo "pinning:     $pinning"
  echo "load:        wrk -t$threads -c$connections -d$duration --latency (keep-alive, loopback)"
  echo "requests:    $ok answered 200, $non2xx not 2xx, $socket_errors socket errors"
  echo "p50:         $(ms "$p50")"
  echo "p90:         $(ms "$p90")"
  echo "p99:         $(ms "$p99")"
  echo "max:         $(ms "$max")"
  echo "tokens/s:    $rate"
  echo "afterwards:  server running: $alive; one more issue: HTTP $status"
} >"$out_file"
echo
cat "$out_file"
say "wrote $out_file"

[[ $non2xx -eq 0 && $socket_errors -eq 0 && $ok -gt 0 ]] ||
  { say "FAIL: $non2xx non-2xx answers, $socket_errors socket errors, $ok 200s" >&2; exit 1; }
[[ $final_ok == yes && $alive == yes ]] ||
  { say "FAIL: after the run: server running: $alive; a final issue got HTTP $status" >&2; exit 1; }
