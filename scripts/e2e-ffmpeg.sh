#!/usr/bin/env bash
# End-to-end check: a real player (ffmpeg) plays the sample through tollgate.
#
#   1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
#   2. starts `tollgate serve` on loopback with OS-assigned ports;
#   3. plays the printed HLS URLs over TLS (trusting only the dev CA) and over
#      plain HTTP, and the DASH URL over TLS, fetching every rendition (-map 0);
#      The same HLS and DASH again with only ?token= on the master/MPD URL (the
#      gate rewrites every child URL), and the rewritten master itself.
#   4. checks with curl (TLS verified against the dev CA): a media playlist
#      and a segment -> 200; no token -> 401 missing; a demo token on the
#      trailer, and a minted trailer token on the demo -> 403 scope; and
#      that the trailer token does play the trailer.
#
# Usage: bash scripts/e2e-ffmpeg.sh            (from any directory)
# Env:   TOLLGATE_BIN     use this binary instead of building one
#        TOLLGATE_CONFIG  config file, relative to the repo root
#                         (default: config/tollgate.toml)
#        E2E_KEEP_TMP=1   keep the temp dir (server logs, ffmpeg stderr)
#        E2E_HLSJS=1      also play the query-token URL with hls.js in headless
#                         Chromium (scripts/e2e-hlsjs.sh; needs node, npm, chromium)
# Needs: ffmpeg (Debian's, built with GnuTLS), curl, coreutils `timeout`.
# Prints "e2e-ffmpeg: N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)
# A relative TOLLGATE_BIN is taken relative to the caller's directory.
if [[ -n ${TOLLGATE_BIN:-} && $TOLLGATE_BIN != /* && -e $TOLLGATE_BIN ]]; then
  TOLLGATE_BIN="$PWD/$TOLLGATE_BIN"
fi
cd "$repo_root" # relative paths (config, the printed ca: path) resolve from here

config=${TOLLGATE_CONFIG:-config/tollgate.toml}
startup_timeout_s=30    # wait for the server's playback lines
ffmpeg_timeout_s=120    # per ffmpeg run
curl_timeout_s=10       # per curl request

# Everything below talks to 127.0.0.1 only; never route that through a proxy.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export NO_PROXY="$no_proxy"

say() { printf 'e2e-ffmpeg: %s\n' "$*"; }

# ------------------------------------------------------------ prerequisites
if ! command -v curl >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "curl missing, installing it with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null
  else
    say "FATAL: curl not found (apt-get install -y curl)" >&2
    exit 2
  fi
fi
for tool in ffmpeg timeout; do
  command -v "$tool" >/dev/null 2>&1 || {
    say "FATAL: $tool not found (Debian: apt-get install -y ffmpeg coreutils)" >&2
    exit 2
  }
done
[[ -f sample/vod/demo/master.m3u8 ]] || {
  say "FATAL: sample/vod/demo missing; run scripts/make-sample-media.sh" >&2
  exit 2
}

if [[ -n ${TOLLGATE_BIN:-} ]]; then
  bin=$TOLLGATE_BIN
else
  say "building tollgate (cargo build)"
  cargo build
  bin="${CARGO_TARGET_DIR:-$repo_root/target}/debug/tollgate"
fi
[[ -x $bin ]] || {
  say "FATAL: tollgate binary not found or not executable: $bin" >&2
  exit 2
}

# ------------------------------------------------------ server + cleanup trap
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-e2e.XXXXXX")
server_pid=""
passed=0
failed=0

server_logs() {
  echo "----- tollgate stdout -----"
  cat "$tmp/server.out" 2>/dev/null || true
  echo "----- tollgate stderr (last 60 lines) -----"
  tail -n 60 "$tmp/server.err" 2>/dev/null || true
  echo "---------------------------"
}

cleanup() {
  local rc=$?
  if [[ -n $server_pid ]]; then
    if kill -0 "$server_pid" 2>/dev/null; then
      kill -TERM "$server_pid" 2>/dev/null || true
      for _ in $(seq 1 50); do # up to 5 s for a graceful shutdown
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$server_pid" 2>/dev/null; then
        say "server $server_pid ignored SIGTERM for 5 s; sending SIGKILL" >&2
        kill -KILL "$server_pid" 2>/dev/null || true
      fi
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 || $failed -ne 0 ]]; then
    server_logs >&2
  fi
  if [[ -n ${E2E_KEEP_TMP:-} ]]; then
    say "kept $tmp" >&2
  else
    rm -rf -- "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting: $bin serve --config $config (loopback, ephemeral ports)"
"$bin" serve --config "$config" \
  --edge-tls-listen 127.0.0.1:0 \
  --edge-plain-listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
server_pid=$!

# value_of PREFIX -> rest of the first stdout line starting with "PREFIX "
value_of() { sed -n "s|^$1 ||p" "$tmp/server.out" | head -n 1 | tr -d '\r'; }

ready=""
for _ in $(seq 1 $((startup_timeout_s * 10))); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    server_pid_rc=0
    wait "$server_pid" || server_pid_rc=$?
    server_pid=""
    say "FATAL: tollgate exited (status $server_pid_rc) before it was ready" >&2
    exit 1
  fi
  if [[ -n $(value_of 'playback:') && -n $(value_of 'playback-plain:') &&
        -n $(value_of 'playback-dash:') && -n $(value_of 'ca:') &&
        -n $(value_of 'tollgate listening:') ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
if [[ -z $ready ]]; then
  say "FATAL: no 'playback:'/'playback-plain:'/'playback-dash:'/'ca:'/'tollgate listening:' lines within ${startup_timeout_s}s" >&2
  exit 1
fi

hls_tls=$(value_of 'playback:')
hls_plain=$(value_of 'playback-plain:')
dash_tls=$(value_of 'playback-dash:')
ca=$(value_of 'ca:')
admin=$(value_of 'tollgate listening:' | sed -n 's/.*admin=\([^ ]*\).*/\1/p')
say "ready (pid $server_pid): $(value_of 'tollgate listening:')"

[[ -f $ca ]] || { say "FATAL: CA file '$ca' does not exist" >&2; exit 1; }
[[ -n $admin ]] || { say "FATAL: no admin=HOST:PORT in the listening line" >&2; exit 1; }

# ----------------------------------------------------------------- checks
pass() { passed=$((passed + 1)); say "PASS $1"; }
fail() { failed=$((failed + 1)); say "FAIL $1" >&2; }

# ffmpeg exits 0 even when segments fail to download, so its stderr is
# searched as well. The first five patterns are the contract; the rest are
# the hls/dash demuxers' own "a segment/fragment failed" messages.
ffmpeg_error_re='Failed to open|HTTP error|Server returned|Error opening|Invalid data|Error when loading|Unable to open|failed verification|does not match hostname'

# play NAME URL [input options...] -- demux + decode every stream (-map 0)
play() {
  local name=$1 url=$2 err rc=0
  shift 2
  err="$tmp/ffmpeg-$name.err"
  timeout "$ffmpeg_timeout_s" \
    ffmpeg -nostdin -hide_banner -loglevel warning "$@" -i "$url" -map 0 -f null - \
    >/dev/null 2>"$err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail "$name: ffmpeg exited $rc ($url)"
    sed 's/^/    /' "$err" >&2
  elif grep -qE "$ffmpeg_error_re" "$err"; then
    fail "$name: ffmpeg exited 0 but reported fetch/demux errors ($url)"
    sed 's/^/    /' "$err" >&2
  else
    pass "$name"
  fi
}

# expect NAME STATUS REASON URL -- GET with curl (TLS verified against the
# dev CA); REASON is the expected x-tollgate-reason, or "" for none required.
expect() {
  local name=$1 want_status=$2 want_reason=$3 url=$4 hdr status reason rc=0
  hdr="$tmp/curl-$name.headers"
  status=$(curl -sS --noproxy '*' --max-time "$curl_timeout_s" --cacert "$ca" \
    -o /dev/null -D "$hdr" -w '%{http_code}' "$url" 2>"$tmp/curl-$name.err") || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail "$name: curl exited $rc ($url): $(cat "$tmp/curl-$name.err")"
    return
  fi
  reason=$(grep -i '^x-tollgate-reason:' "$hdr" | tail -n 1 | cut -d: -f2- | tr -d ' \r' || true)
  if [[ $status != "$want_status" ]]; then
    fail "$name: got HTTP $status (x-tollgate-reason: ${reason:-<none>}), want $want_status ($url)"
  elif [[ -n $want_reason && $reason != "$want_reason" ]]; then
    fail "$name: got x-tollgate-reason '${reason:-<none>}', want '$want_reason' ($url)"
  else
    pass "$name (HTTP $status${reason:+, $reason})"
  fi
}

# URL pieces: https://HOST:PORT/t/<token>/vod/demo/master.m3u8
#             origin ----------   token   path --------------
split_url() { # sets url_origin, url_token, url_path
  local rest
  url_origin=${1%%/t/*}
  rest=${1#*/t/}
  url_token=${rest%%/*}
  url_path=${rest#*/}
}
split_url "$hls_tls"
tls_origin=$url_origin
demo_token=$url_token
master_path=$url_path
split_url "$hls_plain"
plain_origin=$url_origin
if [[ -z $demo_token || $tls_origin == "$hls_tls" || $plain_origin == "$hls_plain" ]]; then
  say "FATAL: playback URLs do not look like <origin>/t/<token>/<path>: $hls_tls $hls_plain" >&2
  exit 1
fi

# 0. the admin health endpoint
health_ok=""
for _ in $(seq 1 20); do
  code=$(curl -sS --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' "http://$admin/healthz" 2>/dev/null || true)
  if [[ $code == 200 ]]; then health_ok=1; break; fi
  sleep 0.25
done
if [[ -n $health_ok ]]; then pass "admin healthz"; else fail "admin healthz: http://$admin/healthz answered '${code:-nothing}', want 200"; fi

# 1. playback through the gate. The TLS options exist only on https inputs:
#    Debian's ffmpeg (GnuTLS) aborts with "Option tls_verify not found." if
#    they are given for an http:// input. Note: ffmpeg's hls/dash demuxers do
#    not pass ca_file/tls_verify on to the nested playlist/segment requests,
#    so ffmpeg verifies the certificate on the master/MPD request only; curl
#    re-verifies a media playlist and a segment below.
play hls-tls "$hls_tls" -ca_file "$ca" -tls_verify 1
play hls-plain "$hls_plain"
play dash-tls "$dash_tls" -ca_file "$ca" -tls_verify 1

# 1b. query-token playback: only the master/MPD URL has ?token=; the
#     gate rewrites the manifests so every variant and segment request carries it.
play hls-query-tls "$tls_origin/$master_path?token=$demo_token" -ca_file "$ca" -tls_verify 1
play hls-query-plain "$plain_origin/$master_path?token=$demo_token"
play dash-query-tls "$tls_origin/${master_path%/*}/dash/manifest.mpd?token=$demo_token" -ca_file "$ca" -tls_verify 1
# Without the rewrite the first variant request would be refused: prove the rewrite.
media_body=$(curl -sS --noproxy '*' --max-time "$curl_timeout_s" --cacert "$ca" \
  "$tls_origin/$master_path?token=$demo_token" 2>/dev/null || true)
if grep -q "^v0/index.m3u8?token=$demo_token\$" <<<"$media_body"; then
  pass "master playlist rewritten (variant URI carries the token)"
else
  fail "master playlist not rewritten: $(head -c 300 <<<"$media_body" | sed "s/$demo_token/<token>/g")"
fi

# 1c. hls.js in headless Chromium (E2E_HLSJS=1; .ci/run sets it): the page is
#     served from another origin, so every request is cross-origin (CORS). Over
#     the plain listener: Chromium would not trust the dev CA. A tampered token
#     must make the same harness fail, so a pass means something.
if [[ -n ${E2E_HLSJS:-} ]]; then
  if bash scripts/e2e-hlsjs.sh "$plain_origin/$master_path?token=$demo_token" --all-levels \
    >"$tmp/hlsjs.out" 2>&1; then
    pass "hls.js in Chromium plays the query-token VOD to the end ($(grep -o '"fragments_loaded":[0-9]*' "$tmp/hlsjs.out"))"
  else
    fail "hls.js in Chromium did not play the query-token VOD"
    sed 's/^/    /' "$tmp/hlsjs.out" >&2
  fi
  hlsjs_rc=0
  # Another signature: flip the first character after the last '.' (6 full bits).
  sig=${demo_token##*.}
  bad_token="${demo_token%.*}.$([[ ${sig:0:1} == A ]] && echo B || echo A)${sig:1}"
  bash scripts/e2e-hlsjs.sh "$plain_origin/$master_path?token=$bad_token" --timeout-s 20 \
    >"$tmp/hlsjs-bad.out" 2>&1 || hlsjs_rc=$?
  if [[ $hlsjs_rc -eq 1 ]]; then
    pass "hls.js with a tampered token fails (exit 1)"
  else
    fail "hls.js with a tampered token: exit $hlsjs_rc, want 1"
    sed 's/^/    /' "$tmp/hlsjs-bad.out" >&2
  fi
fi

# 2. a media playlist and a segment over TLS (certificate verified by curl)
expect media-playlist-tls 200 "" "$tls_origin/t/$demo_token/${master_path%/*}/v0/index.m3u8"
expect segment-tls 200 "" "$tls_origin/t/$demo_token/${master_path%/*}/v1/seg_000.ts"

# 3. refusals
expect no-token-tls 401 missing "$tls_origin/$master_path"
expect no-token-plain 401 missing "$plain_origin/$master_path"
expect demo-token-on-trailer 403 scope "$tls_origin/t/$demo_token/vod/trailer/master.m3u8"

mint_rc=0
trailer_token=$(timeout 30 "$bin" token mint --config "$config" --resource trailer --ttl 60s \
  2>"$tmp/mint.err" </dev/null | awk 'NF { last = $0 } END { print last }' | tr -d ' \r') || mint_rc=$?
if [[ $mint_rc -ne 0 || ! $trailer_token =~ ^[A-Za-z0-9._~-]+$ ]]; then
  fail "token mint --resource trailer: exit $mint_rc, output '${trailer_token}'"
  sed 's/^/    /' "$tmp/mint.err" >&2
else
  pass "token mint --resource trailer"
  expect wrong-resource-tls 403 scope "$tls_origin/t/$trailer_token/$master_path"
  # ...and the same token does open its own resource (so the 403 above is
  # about scope, not about a token the server cannot verify).
  play trailer-hls-tls "$tls_origin/t/$trailer_token/vod/trailer/master.m3u8" -ca_file "$ca" -tls_verify 1
fi

# The server must still be running after all of that.
if kill -0 "$server_pid" 2>/dev/null; then pass "server still running"; else fail "server died during the checks"; fi

say "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
