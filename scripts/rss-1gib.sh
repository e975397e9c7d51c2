#!/usr/bin/env bash
# Acceptance check: "A 1 GiB file streams through the gate with the gate's RSS growing by
# less than 32 MiB."
#
# Builds the release binary, serves a sparse 1 GiB file (a) from a file:// origin and
# (b) through an http:// origin (python3 -m http.server on 127.0.0.1), downloads it
# whole with curl through the gate's plain edge listener, samples the gate's VmRSS every
# 0.2 s, and fails when max RSS - baseline >= 32 MiB. Everything it starts runs on
# 127.0.0.1 with kernel-chosen ports and is killed (by PID) on exit.
#
#   scripts/rss-1gib.sh            # from the repository root
#
# Prints one line per case and `rss-1gib: N passed, M failed`; exits non-zero on failure.

set -euo pipefail

cd "$(dirname "$0")/.."
LIMIT_KIB=$((32 * 1024))
SIZE=$((1024 * 1024 * 1024))

command -v curl >/dev/null || { echo "rss-1gib: curl is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "rss-1gib: python3 is required" >&2; exit 2; }
[ -r /proc/self/status ] || { echo "rss-1gib: needs Linux /proc" >&2; exit 2; }

echo "rss-1gib: building (cargo build --release)"
cargo build --release --quiet
BIN="$PWD/target/release/tollgate"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-rss.XXXXXX")"
GATE_PID=""
PY_PID=""
CURL_PID=""
cleanup() {
    for pid in "$CURL_PID" "$GATE_PID" "$PY_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            # Bounded wait for it to go.
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Media: sparse 1 GiB files (no disk blocks) and a small warm-up file.
mkdir -p "$TMP/media/vod/big" "$TMP/media/pvod/big"
truncate -s 1G "$TMP/media/vod/big/big.bin"
truncate -s 1G "$TMP/media/pvod/big/big.bin"
echo warm > "$TMP/media/vod/big/warm.txt"
echo warm > "$TMP/media/pvod/big/warm.txt"

# The in-between http:// origin, on a kernel-chosen port.
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$TMP/media" \
    >"$TMP/py.out" 2>"$TMP/py.err" &
PY_PID=$!
PY_PORT=""
for _ in $(seq 1 100); do
    PY_PORT="$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$TMP/py.out" | head -n1)"
    [ -n "$PY_PORT" ] && break
    kill -0 "$PY_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$PY_PORT" ] || { echo "rss-1gib: python http.server did not start" >&2; cat "$TMP/py.err" >&2; exit 2; }

# The config: scripts/tollgate_e2e.py's base (listeners on 127.0.0.1:0, a dev certificate,
# the store and a generated key in $TMP) with these [edge] lines; then its origins,
# routes and resource.
python3 -c 'import sys; sys.path.insert(0, "scripts"); import tollgate_e2e as e
print(e.gate_config("rss", "30s", edge=sys.stdin.read()))' >"$TMP/tollgate.toml" <<'EOF'
header_timeout = "10s"
tls_handshake_timeout = "10s"
max_header_bytes = 16384
max_headers = 100
max_connections = 10000
h2_max_concurrent_streams = 100
trusted_proxies = []
cors_origins = ["*"]
EOF
cat >>"$TMP/tollgate.toml" <<EOF
[[origins]]
name = "files"
upstreams = ["file://media"]

[[origins]]
name = "http"
upstreams = ["http://127.0.0.1:$PY_PORT"]
connect_timeout = "2s"
read_timeout = "10s"

[[routes]]
name = "vod"
path = "/vod/{rid}/"
type = "vod"
origin = "files"

[[routes]]
name = "pvod"
path = "/pvod/{rid}/"
type = "vod"
origin = "http"

[[resources]]
id = "big"
type = "vod"
org = "rss-org"
project = "rss-project"
privacy = "token"
EOF

TOKEN="$("$BIN" token mint --config "$TMP/tollgate.toml" --resource big 2>"$TMP/mint.err")" || {
    echo "rss-1gib: token mint failed" >&2; cat "$TMP/mint.err" >&2; exit 2; }

"$BIN" serve --config "$TMP/tollgate.toml" \
    --edge-plain-listen 127.0.0.1:0 --edge-tls-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$TMP/gate.out" 2>"$TMP/gate.err" &
GATE_PID=$!
PORT=""
for _ in $(seq 1 300); do
    PORT="$(sed -n 's/^tollgate listening:.*edge-plain=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/gate.out" | head -n1)"
    [ -n "$PORT" ] && break
    kill -0 "$GATE_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "rss-1gib: the gate did not start" >&2; cat "$TMP/gate.err" >&2; exit 2; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$GATE_PID/status"; }

RSS_START="$(rss_kib)"
echo "rss-1gib: gate pid $GATE_PID on 127.0.0.1:$PORT, http origin 127.0.0.1:$PY_PORT, RSS at start ${RSS_START} KiB"

PASSED=0
FAILED=0

# run_case NAME PATH
run_case() {
    local name="$1" path="$2"
    local url="http://127.0.0.1:$PORT$path?token=$TOKEN"
    local warm="http://127.0.0.1:$PORT${path%/*}/warm.txt?token=$TOKEN"
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$warm" || true)"
    if [ "$code" != "200" ]; then
        echo "rss-1gib: $name: FAIL warm-up request answered $code"
        FAILED=$((FAILED + 1))
        return
    fi
    local base max now samples=0
    base="$(rss_kib)"
    max="$base"
    curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' --max-time 300 "$url" \
        >"$TMP/curl.$name" 2>&1 &
    CURL_PID=$!
    # Bounded: curl itself stops within 300 s; 1600 samples at 0.2 s is 320 s.
    while kill -0 "$CURL_PID" 2>/dev/null && [ "$samples" -lt 1600 ]; do
        now="$(rss_kib)"
        [ "$now" -gt "$max" ] && max="$now"
        samples=$((samples + 1))
        sleep 0.2
    done
    wait "$CURL_PID" || true
    CURL_PID=""
    now="$(rss_kib)"
    [ "$now" -gt "$max" ] && max="$now"
    local result http size secs
    result="$(cat "$TMP/curl.$name")"
    read -r http size secs <<<"$result"
    local growth=$((max - base))
    local verdict="ok"
    if [ "$http" != "200" ] || [ "$size" != "$SIZE" ]; then
        verdict="FAIL (download: status $http, $size of $SIZE bytes)"
    elif [ "$growth" -ge "$LIMIT_KIB" ]; then
        verdict="FAIL (growth >= 32 MiB)"
    fi
    printf 'rss-1gib: %-5s %s: baseline %d KiB, max %d KiB, growth %d KiB (%.1f MiB), after %d KiB, %s bytes in %ss, %d samples\n' \
        "$name" "$verdict" "$base" "$max" "$growth" "$(awk "BEGIN{print $growth/1024}")" "$now" "$size" "$secs" "$samples"
    if [ "$verdict" = "ok" ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}

run_case file "/vod/big/big.bin"
run_case http "/pvod/big/big.bin"

echo "rss-1gib: RSS at start ${RSS_START} KiB, at end $(rss_kib) KiB"
echo "rss-1gib: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
