#!/usr/bin/env bash
# Load benchmark (not a test, not run by CI): tollgate against nginx and HAProxy in front
# of the same origin, every ratio measured in the same run. See benches/load/README.md.
#
#   1. installs what is missing (apt: nginx haproxy wrk nghttp2-client openssl curl
#      python3; `cargo install oha --locked --version $LOAD_OHA_VERSION` with OpenSSL), with a
#      temporary policy-rc.d so that apt starts no service; builds tollgate
#      (cargo build --release) unless TOLLGATE_BIN points at a binary;
#   2. in a tmpfs dir: 1 KiB, 64 KiB and 1 MiB segment files, a self-signed ECDSA P-256
#      certificate, an HS256 secret, configs from benches/load/conf/; starts the origin
#      (nginx) and every target as its own process on 127.0.0.1 ports picked free,
#      all pinned to CPU 0;
#   3. checks every target once: 200 with the right size; a checking target refuses (401
#      or 403) a request without a token, with a tampered one, with another issuer's;
#      HAProxy also an EdDSA and an expired token; secure_link a wrong or another path's MD5;
#   4. saturation: wrk (HTTP/1.1, plain and TLS) or h2load (HTTP/2 over TLS), pinned to
#      CPU 1, round-robin over targets for 3 rounds; the proxy's CPU time (utime +
#      stime from /proc/<pid>/stat, every process of the target) is read around each run;
#   5. latency: oha at one fixed rate per protocol and size for every target (a fraction
#      of the slowest target's saturated rate), with coordinated-omission correction,
#      p50/p99 computed from oha's per-request records after a warm-up;
#   6. memory: tollgate's (and nginx's) RSS idle, with $idle_conns idle keep-alive
#      connections, and per stalled 1 MiB stream;
#   7. writes target/load/results.md (tables + ratios) and target/load/raw.tsv.
#
# The cache-hit comparison (LOAD_ONLY=cache): tollgate with its shield cache on
# (tollgate-cache) against nginx's proxy_cache behind secure_link (nginx-cache), both
# warmed by the checks, so every measured request is a hit; the origin's request counter
# is read around every run to show it (the "origin reqs" columns).
#
# Usage: bash benches/load/run.sh          (from any directory; needs root for apt)
# Env:   LOAD_QUICK=1           smoke run: 1 round, 1 s runs, 2,000 idle connections
#        LOAD_ONLY=a,b          only these targets (nginx, nginx-securelink, haproxy,
#                               haproxy-jwt, tollgate-eddsa, tollgate-hs256, tollgate-off;
#                               nginx-cache and tollgate-cache run only when named here);
#                               LOAD_ONLY=cache means nginx-cache,tollgate-cache
#        LOAD_VARIANTS=h1,tls,h2   protocol variants (default all three; h1,tls for cache)
#        LOAD_SIZES=1k,64k,1m   segment sizes (default all three)
#        LOAD_ROUNDS            interleaved saturation rounds (default 3; quick 1)
#        LOAD_LAT_ROUNDS        interleaved fixed-rate rounds (default 2; quick 1)
#        LOAD_DURATION          seconds per saturation run (default 2; quick 1)
#        LOAD_LAT_SAMPLES       answers per fixed-rate run (default 2500): the run lasts
#                               samples/rate seconds, at least 1 and at most LOAD_LAT_MAX
#                               (default 2; quick 1), measured after LOAD_LAT_WARMUP_MS
#                               (default 300) of the same run
#        LOAD_TLS_TARGETS, LOAD_H2_TARGETS   targets of those variants (space-separated)
#        LOAD_CONNECTIONS       concurrent requests in every run (default 32)
#        LOAD_RATE_FRACTION     fixed rate = this × the slowest target's req/s (default 0.5)
#        LOAD_MEMORY=0          skip the memory phase
#        LOAD_IDLE_CONNS        idle keep-alive connections in the memory phase (10000)
#        LOAD_STREAMS           stalled 1 MiB streams in the memory phase (200)
#        LOAD_NGINX_PROXY_BUFFER  nginx proxy_buffer_size (default 64k)
#        LOAD_OHA_VERSION       oha to install when missing (default 1.16.0)
#        TOLLGATE_BIN           use this binary instead of building one (a release build!)
#        LOAD_KEEP_TMP=1        keep the temp dir (configs, logs, raw tool output)
# Exits 1 if a cell failed (a non-200 answer, a socket error, a short body), 2 on a setup
# error; the tables are written either way once the measurements ran.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/../.." && pwd)
if [[ -n ${TOLLGATE_BIN:-} && $TOLLGATE_BIN != /* && -e $TOLLGATE_BIN ]]; then
  TOLLGATE_BIN="$PWD/$TOLLGATE_BIN"
fi
cd "$repo_root"
command_line="bash benches/load/run.sh"
for v in LOAD_QUICK LOAD_ONLY LOAD_VARIANTS LOAD_SIZES LOAD_ROUNDS LOAD_LAT_ROUNDS LOAD_DURATION LOAD_LAT_SAMPLES LOAD_LAT_MAX LOAD_LAT_WARMUP_MS \
  LOAD_CONNECTIONS LOAD_RATE_FRACTION LOAD_MEMORY LOAD_IDLE_CONNS LOAD_STREAMS LOAD_NGINX_PROXY_BUFFER \
  LOAD_TLS_TARGETS LOAD_H2_TARGETS; do
  if [[ -n ${!v:-} ]]; then
    if [[ ${!v} =~ ^[A-Za-z0-9_.,:/=-]+$ ]]; then command_line="$v=${!v} $command_line"
    else command_line="$v='${!v}' $command_line"; fi
  fi
done

t_begin=$(date +%s)
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/sbin:/sbin"
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost"

# ------------------------------------------------------------------------------ knobs
quick=${LOAD_QUICK:-0}
[[ $quick == 1 ]] && q=1 || q=0
rounds=${LOAD_ROUNDS:-$((q ? 1 : 3))}
lat_rounds=${LOAD_LAT_ROUNDS:-$((q ? 1 : 2))}
dur=${LOAD_DURATION:-$((q ? 1 : 2))}
lat_samples=${LOAD_LAT_SAMPLES:-2500}
lat_max=${LOAD_LAT_MAX:-$((q ? 1 : 2))}
lat_warm_ms=${LOAD_LAT_WARMUP_MS:-300}
conns=${LOAD_CONNECTIONS:-32}
rate_fraction=${LOAD_RATE_FRACTION:-0.5}
memory=${LOAD_MEMORY:-1}
idle_conns=${LOAD_IDLE_CONNS:-$((q ? 2000 : 10000))}
streams=${LOAD_STREAMS:-200}
proxy_buffer_size=${LOAD_NGINX_PROXY_BUFFER:-64k}
oha_version=${LOAD_OHA_VERSION:-1.16.0}
# LOAD_ONLY=cache: the cache-hit comparison, over HTTP/1.1 plain and TLS unless told.
default_variants=h1,tls,h2
if [[ ${LOAD_ONLY:-} == cache ]]; then LOAD_ONLY=nginx-cache,tollgate-cache; default_variants=h1,tls; fi
IFS=, read -r -a variants <<<"${LOAD_VARIANTS:-$default_variants}"
IFS=, read -r -a sizes <<<"${LOAD_SIZES:-1k,64k,1m}"
out_dir="${CARGO_TARGET_DIR:-$repo_root/target}/load"
for n in rounds lat_rounds dur lat_samples lat_max conns idle_conns streams; do
  [[ ${!n} =~ ^[0-9]+$ && ${!n} -gt 0 ]] || { echo "run.sh: $n must be a positive integer" >&2; exit 2; }
done
[[ $lat_warm_ms =~ ^[0-9]+$ ]] || { echo "run.sh: LOAD_LAT_WARMUP_MS must be an integer" >&2; exit 2; }
[[ $rate_fraction =~ ^(0?\.[0-9]+|1(\.0*)?)$ ]] || { echo "run.sh: LOAD_RATE_FRACTION must be in (0, 1]" >&2; exit 2; }

default_targets=(nginx nginx-securelink haproxy haproxy-jwt tollgate-eddsa tollgate-hs256 tollgate-off)
# The cache-hit pair runs only when LOAD_ONLY names it (the default run stays in budget).
cache_targets=(nginx-cache tollgate-cache)
all_targets=("${default_targets[@]}" "${cache_targets[@]}")
# Which targets run in which protocol variant. HTTP/1.1 plain: all of them (the check's
# cost is isolated there). TLS and HTTP/2: tollgate with its check against the peers
# without one (the TLS performance target compares tollgate-eddsa with nginx), and the
# cache-hit pair when selected; more would not fit the 15-minute budget.
declare -A variant_targets=(
  [h1]="${all_targets[*]}"
  [tls]=${LOAD_TLS_TARGETS:-"nginx haproxy tollgate-eddsa ${cache_targets[*]}"}
  [h2]=${LOAD_H2_TARGETS:-"nginx haproxy tollgate-eddsa ${cache_targets[*]}"}
)
declare -A size_bytes=([1k]=1024 [64k]=65536 [1m]=1048576)
for s in "${sizes[@]}"; do [[ -n ${size_bytes[$s]:-} ]] || { echo "run.sh: unknown size $s" >&2; exit 2; }; done
for v in "${variants[@]}"; do [[ -n ${variant_targets[$v]:-} ]] || { echo "run.sh: unknown variant $v" >&2; exit 2; }; done
for v in tls h2; do
  for t in ${variant_targets[$v]}; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t in the $v targets" >&2; exit 2; }
  done
done
selected=("${default_targets[@]}")
if [[ -n ${LOAD_ONLY:-} ]]; then
  IFS=, read -r -a selected <<<"$LOAD_ONLY"
  for t in "${selected[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t" >&2; exit 2; }
  done
fi
is_selected() { [[ " ${selected[*]} " == *" $1 "* ]]; }

say() { printf 'load: %s\n' "$*"; }
die() { say "FATAL: $*" >&2; exit 2; }
now() { date +%s; }

# ----------------------------------------------------------- workspace + cleanup trap
run=$(mktemp -d /dev/shm/tollgate-load.XXXXXX 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/tollgate-load.XXXXXX")
chmod 755 "$run" # nginx workers (user nobody) read the media below it
started=() # every pid this script started and must stop
made_policy_rc="" # set when this script made /usr/sbin/policy-rc.d (removed on exit)

stop_pid() {
  local pid=$1 kids
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(children_of "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # An nginx master killed hard leaves its worker: that one is ours too.
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true; done
}

cleanup() {
  local rc=$?
  trap - EXIT
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[i]}"; done
  [[ -n $made_policy_rc ]] && rm -f /usr/sbin/policy-rc.d
  if [[ $rc -ne 0 && $rc -ne 1 ]]; then
    for f in "$run"/*.err "$run"/*.error.log; do
      [[ -s $f ]] || continue
      echo "----- $f (last 15 lines) -----" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [[ -n ${LOAD_KEEP_TMP:-} ]]; then say "kept $run" >&2; else rm -rf -- "$run"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Child pids of a process, from /proc (no procps needed).
children_of() {
  local parent=$1 f line rest ppid
  for f in /proc/[0-9]*/stat; do
    line=$(<"$f") 2>/dev/null || continue
    rest=${line##*) }
    read -r _ ppid _ <<<"$rest"
    if [[ $ppid == "$parent" ]]; then f=${f#/proc/}; echo "${f%/stat}"; fi
  done
}

# utime + stime (clock ticks) summed over processes: fields 14 and 15 of /proc/<pid>/stat,
# counted after the ")" that ends the command name.
cpu_ticks() {
  local total=0 pid line
  local -a f
  for pid in "$@"; do
    # A process that ended (nginx's one-off cache loader) counts no more.
    line=$(<"/proc/$pid/stat") 2>/dev/null || continue
    read -r -a f <<<"${line##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

rss_kib() {
  local total=0 pid v
  for pid in "$@"; do
    v=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status")
    total=$((total + v))
  done
  echo "$total"
}

# ---------------------------------------------------------------------- prerequisites
t_phase=$(now)
need_apt=()
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
# oha is built against the system OpenSSL (see below): its headers and pkg-config.
if ! command -v oha >/dev/null 2>&1; then
  [[ -e /usr/include/openssl/ssl.h ]] || need_apt+=(libssl-dev)
  command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
  command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
fi
if [[ ${#need_apt[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1 ||
    die "${need_apt[*]} not found (apt-get install -y ${need_apt[*]})"
  # Debian's maintainer scripts start nginx and haproxy on install; a policy-rc.d that
  # exits 101 forbids it. Only ours is removed again (on exit, by the trap below).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# benches/load/run.sh: no service starts during its apt-get install\nexit 101\n' \
      >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy_rc=1
  fi
  say "installing ${need_apt[*]} with apt-get"
  if ! apt_log=$( { timeout 300 apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } </dev/null 2>&1); then
    printf '%s\n' "$apt_log" >&2
    [[ -n $made_policy_rc ]] && rm -f /usr/sbin/policy-rc.d
    die "apt-get install ${need_apt[*]} failed"
  fi
  [[ -n $made_policy_rc ]] && { rm -f /usr/sbin/policy-rc.d; made_policy_rc=""; }
fi
t_apt=$(( $(now) - t_phase ))

# oha (minutes of compiling on 2 cores) builds in the background while tollgate builds:
# both have serial stretches, so together they take a little less time than one after
# the other. Its TLS is OpenSSL (native-tls), like wrk's and h2load's, instead of the
# default rustls + aws-lc, whose C build alone costs about a minute here.
t_phase=$(now)
oha_installed="already installed"
oha_pid=""
if ! command -v oha >/dev/null 2>&1; then
  command -v cargo >/dev/null 2>&1 || die "oha not found and no cargo to install it with"
  say "installing oha $oha_version in the background (cargo install --locked; log: $run/oha-install.log)"
  timeout 1500 cargo install oha --locked --version "$oha_version" --no-default-features --features native-tls \
    </dev/null >"$run/oha-install.log" 2>&1 &
  oha_pid=$!
  started+=("$oha_pid")
  oha_installed="installed by this run, beside the build"
fi
if [[ -n ${TOLLGATE_BIN:-} ]]; then
  bin=$TOLLGATE_BIN
else
  say "building tollgate (cargo build --release)"
  timeout 1500 cargo build --release </dev/null || die "cargo build --release failed"
  bin="${CARGO_TARGET_DIR:-$repo_root/target}/release/tollgate"
fi
[[ -x $bin ]] || die "tollgate binary not found or not executable: $bin"
t_build=$(( $(now) - t_phase ))
t_oha=0
if [[ -n $oha_pid ]]; then
  wait "$oha_pid" || { tail -n 30 "$run/oha-install.log" >&2; die "cargo install oha --version $oha_version failed"; }
  t_oha=$(( $(stat -c %Y "$run/oha-install.log") - t_phase ))
  command -v oha >/dev/null 2>&1 || die "oha installed but not on PATH (\$CARGO_HOME/bin)"
fi

py=$(python3 -c 'import sys; print(sys.executable)') # skip pyenv-style shims per call
clk_tck=$(getconf CLK_TCK)
cpus=$(nproc)
server_pin=()
client_pin=()
pinning="none (fewer than 2 CPUs: numbers are not comparable with pinned runs)"
if [[ $cpus -ge 2 ]]; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
  pinning="origin and proxy on CPU 0, load generator on CPU 1"
else
  say "WARNING: $cpus CPU: running unpinned"
fi

# Descriptors: 10,000 idle connections need as many in the client and in the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
if [[ $memory == 1 && $nofile -lt $((idle_conns + 500)) ]]; then
  say "WARNING: ulimit -n is $nofile; idle connections lowered from $idle_conns"
  idle_conns=$((nofile - 500))
fi

wait_port() { # name pid port
  local i
  for i in $(seq 1 100); do
    kill -0 "$2" 2>/dev/null || die "$1 exited at start-up (see $run/$1.err)"
    if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$1 is not listening on 127.0.0.1:$3 after 10 s"
}

render() { # template out include key=value...: the template with the include file (or
  # nothing) in place of its @CHECK@ line, then every @KEY@ replaced by its value.
  local template=$1 out=$2 inc=$3 kv
  shift 3
  cp "$template" "$out"
  if [[ -n $inc ]]; then
    sed -i -e "/@CHECK@/r $inc" -e "/@CHECK@/d" "$out"
  else
    sed -i "/@CHECK@/d" "$out"
  fi
  for kv in "$@"; do
    # Values are paths, ports, hex and names: never the | delimiter or a backslash.
    sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$out"
  done
  ! grep -q '@[A-Z_]*@' "$out" || die "unfilled placeholder in $out: $(grep -o '@[A-Z_]*@' "$out" | head -1)"
}

# ---------------------------------------------------------------------------- material
say "workspace $run; $pinning"
media="$run/media"
mkdir -p "$media/vod/bench" "$media/pub" "$run/tls" "$run/tollgate" "$run/out"
for s in 1k 64k 1m; do
  head -c "${size_bytes[$s]}" /dev/urandom >"$media/vod/bench/seg-$s.ts"
  ln "$media/vod/bench/seg-$s.ts" "$media/pub/seg-$s.ts"
done
chmod -R a+rX "$media"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$run/tls/key.pem" -out "$run/tls/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 || die "openssl req failed"
cat "$run/tls/cert.pem" "$run/tls/key.pem" >"$run/tls/haproxy.pem"

secret=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n') # 40 hex characters
printf '%s' "$secret" >"$run/tollgate/hs256.secret"
issuer=tollgate-bench
expires=$(( $(now) + 4 * 3600 ))

read -r -a ports <<<"$("$py" "$script_dir/clients.py" ports 22)"
[[ ${#ports[@]} -eq 22 ]] || die "could not pick free ports"
origin_port=${ports[0]}
declare -A plain_port tls_port
plain_port=([nginx]=${ports[1]} [nginx-securelink]=${ports[2]} [haproxy]=${ports[3]} [haproxy-jwt]=${ports[4]} [tollgate]=${ports[5]})
tls_port=([nginx]=${ports[6]} [nginx-securelink]=${ports[7]} [haproxy]=${ports[8]} [haproxy-jwt]=${ports[9]} [tollgate]=${ports[10]})
tollgate_admin=${ports[11]}
mem_ports=("${ports[12]}" "${ports[13]}" "${ports[14]}" "${ports[15]}" "${ports[16]}")
plain_port+=([nginx-cache]=${ports[17]} [tollgate-cache]=${ports[18]})
tls_port+=([nginx-cache]=${ports[19]} [tollgate-cache]=${ports[20]})
tollgate_cache_admin=${ports[21]}

# ------------------------------------------------------------------------------ servers
# The start_* functions run in this shell (never in $(…)), so that what they start stays
# our child and its pid lands in `started`; the pid is left in last_pid.
last_pid=""
declare -A proc_pids # target -> "pid [pid...]" whose CPU counts
start_nginx() { # name conf
  local name=$1 conf=$2 pid
  mkdir -p "$run/$name"
  "${server_pin[@]}" nginx -p "$run/$name/" -c "$conf" -e "$run/$name.error.log" -g 'daemon off;' \
    >"$run/$name.out" 2>"$run/$name.err" </dev/null &
  last_pid=$!
  started+=("$last_pid")
}
start_haproxy() { # name cfg
  local name=$1 cfg=$2 pid
  "${server_pin[@]}" haproxy -f "$cfg" -db >"$run/$name.out" 2>"$run/$name.err" </dev/null &
  last_pid=$!
  started+=("$last_pid")
}
start_tollgate() { # name config plain tls admin
  local name=$1 config=$2 pid i
  # rustls warns once per handshake whose SNI is an IP address (oha sends one): muted.
  RUST_LOG=warn,rustls=error "${server_pin[@]}" "$bin" serve --config "$config" \
    --edge-plain-listen "127.0.0.1:$3" --edge-tls-listen "127.0.0.1:$4" --admin-listen "127.0.0.1:$5" \
    >"$run/$name.out" 2>"$run/$name.err" </dev/null &
  pid=$!
  started+=("$pid")
  last_pid=$pid
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || die "$name exited at start-up (see $run/$name.err)"
    grep -q '^tollgate listening: ' "$run/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^tollgate listening: ' "$run/$name.out" || die "$name: no 'tollgate listening:' line in 30 s"
}
nginx_workers() { # master pid -> "master worker..." (the workers appear just after start)
  local pid=$1 kids i
  for i in $(seq 1 50); do
    kids=$(children_of "$pid" | tr '\n' ' ')
    [[ -n $kids ]] && break
    sleep 0.1
  done
  [[ -n $kids ]] || die "nginx $pid started no worker"
  echo "$pid ${kids% }"
}

render "$script_dir/conf/origin.nginx.conf" "$run/origin.conf" "" \
  NOFILE="$nofile" RUN="$run" ORIGIN_PORT="$origin_port" MEDIA="$media"
start_nginx origin "$run/origin.conf"
origin_pid=$last_pid
wait_port origin "$origin_pid" "$origin_port"

make_nginx_conf() { # target plain tls out [check-include]
  local template="$script_dir/conf/nginx.conf"
  [[ $1 == nginx-cache ]] && template="$script_dir/conf/nginx-cache.conf"
  render "$template" "$4" "${5:-}" NOFILE="$nofile" RUN="$run" TARGET="$1" \
    TLS="$run/tls" ORIGIN_PORT="$origin_port" PORT="$2" TLS_PORT="$3" \
    PROXY_BUFFER_SIZE="$proxy_buffer_size" SECRET="$secret"
}
make_haproxy_cfg() { # target plain tls out [check-include]
  render "$script_dir/conf/haproxy.cfg" "$4" "${5:-}" TLS="$run/tls" ORIGIN_PORT="$origin_port" \
    PORT="$2" TLS_PORT="$3" SECRET="$secret" ISSUER="$issuer"
}
make_tollgate_conf() { # out plain tls admin eddsa-active
  local hs=true
  [[ $5 == true ]] && hs=false
  render "$script_dir/conf/tollgate.toml" "$1" "" RUN="$run" TLS="$run/tls" ORIGIN_PORT="$origin_port" \
    PORT="$2" TLS_PORT="$3" ADMIN_PORT="$4" ISSUER="$issuer" EDDSA_ACTIVE="$5" HS256_ACTIVE="$hs"
}

if is_selected nginx; then
  make_nginx_conf nginx "${plain_port[nginx]}" "${tls_port[nginx]}" "$run/nginx.conf"
  start_nginx nginx "$run/nginx.conf"
  pid=$last_pid
  wait_port nginx "$pid" "${plain_port[nginx]}"
  proc_pids[nginx]=$(nginx_workers "$pid")
fi
# The nginx targets behind a secure_link check (make_nginx_conf gives nginx-cache its cache template).
for t in nginx-securelink nginx-cache; do
  is_selected "$t" || continue
  make_nginx_conf "$t" "${plain_port[$t]}" "${tls_port[$t]}" \
    "$run/$t.conf" "$script_dir/conf/securelink.nginx.inc"
  start_nginx "$t" "$run/$t.conf"
  pid=$last_pid
  wait_port "$t" "$pid" "${plain_port[$t]}"
  proc_pids[$t]=$(nginx_workers "$pid")
done
if is_selected haproxy; then
  make_haproxy_cfg haproxy "${plain_port[haproxy]}" "${tls_port[haproxy]}" "$run/haproxy.cfg"
  start_haproxy haproxy "$run/haproxy.cfg"
  pid=$last_pid
  wait_port haproxy "$pid" "${plain_port[haproxy]}"
  proc_pids[haproxy]=$pid
fi
if is_selected haproxy-jwt; then
  make_haproxy_cfg haproxy-jwt "${plain_port[haproxy-jwt]}" "${tls_port[haproxy-jwt]}" \
    "$run/haproxy-jwt.cfg" "$script_dir/conf/haproxy-jwt.inc"
  start_haproxy haproxy-jwt "$run/haproxy-jwt.cfg"
  pid=$last_pid
  wait_port haproxy-jwt "$pid" "${plain_port[haproxy-jwt]}"
  proc_pids[haproxy-jwt]=$pid
fi

# tollgate: one process for its three targets (routes "vod" and "pub"); the HS256 token
# comes from a copy of the config whose active key is the HS256 one.
make_tollgate_conf "$run/tollgate.toml" "${plain_port[tollgate]}" "${tls_port[tollgate]}" "$tollgate_admin" true
make_tollgate_conf "$run/tollgate-mint-hs256.toml" "${plain_port[tollgate]}" "${tls_port[tollgate]}" "$tollgate_admin" false
ed_token=$(timeout 60 "$bin" token mint --config "$run/tollgate.toml" --resource bench --ttl 4h </dev/null 2>"$run/mint.err") ||
  die "token mint (EdDSA) failed: $(cat "$run/mint.err")"
hs_token=$(timeout 60 "$bin" token mint --config "$run/tollgate-mint-hs256.toml" --resource bench --ttl 4h </dev/null 2>>"$run/mint.err") ||
  die "token mint (HS256) failed: $(cat "$run/mint.err")"
# For the checks: an HS256 token from another issuer, and one that expires in a second.
make_tollgate_conf "$run/tollgate-mint-other-issuer.toml" "${plain_port[tollgate]}" "${tls_port[tollgate]}" "$tollgate_admin" false
sed -i "s|^issuer = \"$issuer\"|issuer = \"someone-else\"|" "$run/tollgate-mint-other-issuer.toml"
hs_other_issuer=$(timeout 60 "$bin" token mint --config "$run/tollgate-mint-other-issuer.toml" --resource bench --ttl 4h </dev/null 2>>"$run/mint.err") ||
  die "token mint (other issuer) failed: $(cat "$run/mint.err")"
hs_short=$(timeout 60 "$bin" token mint --config "$run/tollgate-mint-hs256.toml" --resource bench --ttl 1s </dev/null 2>>"$run/mint.err") ||
  die "token mint (1 s) failed: $(cat "$run/mint.err")"
hs_short_minted=$(now)
jwt_re='^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$'
for tok in "$ed_token" "$hs_token" "$hs_other_issuer" "$hs_short"; do
  [[ $tok =~ $jwt_re ]] || die "token mint printed no JWT"
done
tollgate_threads=""
if is_selected tollgate-eddsa || is_selected tollgate-hs256 || is_selected tollgate-off; then
  start_tollgate tollgate "$run/tollgate.toml" "${plain_port[tollgate]}" "${tls_port[tollgate]}" "$tollgate_admin"
  pid=$last_pid
  wait_port tollgate "$pid" "${plain_port[tollgate]}"
  proc_pids[tollgate-eddsa]=$pid
  proc_pids[tollgate-hs256]=$pid
  proc_pids[tollgate-off]=$pid
  tollgate_pid=$pid
fi
# tollgate-cache: a process of its own (its CPU alone counts), the same keys and tokens,
# its own store, and the [cache] section.
if is_selected tollgate-cache; then
  make_tollgate_conf "$run/tollgate-cache.toml" "${plain_port[tollgate-cache]}" "${tls_port[tollgate-cache]}" \
    "$tollgate_cache_admin" true
  sed -i 's|/tollgate/tollgate.db"|/tollgate/tollgate-cache.db"|' "$run/tollgate-cache.toml"
  cat "$script_dir/conf/tollgate-cache.inc" >>"$run/tollgate-cache.toml"
  start_tollgate tollgate-cache "$run/tollgate-cache.toml" "${plain_port[tollgate-cache]}" \
    "${tls_port[tollgate-cache]}" "$tollgate_cache_admin"
  pid=$last_pid
  wait_port tollgate-cache "$pid" "${plain_port[tollgate-cache]}"
  proc_pids[tollgate-cache]=$pid
fi

# ------------------------------------------------------------------------ request shape
# Per target: the path (with its token or link), an extra header, and the ports.
securelink_md5() { # uri
  printf '%s' "$expires$1 $secret" | openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '='
}
url_path() { # target size
  local p="/vod/bench/seg-$2.ts"
  case $1 in
    nginx-securelink | nginx-cache) echo "$p?md5=$(securelink_md5 "$p")&expires=$expires" ;;
    tollgate-eddsa | tollgate-cache) echo "$p?token=$ed_token" ;;
    tollgate-off) echo "/pub/seg-$2.ts" ;;
    *) echo "$p" ;;
  esac
}
auth_header() { # target
  case $1 in
    haproxy-jwt | tollgate-hs256) echo "Authorization: Bearer $hs_token" ;;
    *) echo "" ;;
  esac
}
base_of() { case $1 in tollgate-cache) echo "$1" ;; tollgate-*) echo tollgate ;; *) echo "$1" ;; esac; }
url_for() { # variant target size
  local b
  b=$(base_of "$2")
  case $1 in
    h1) echo "http://127.0.0.1:${plain_port[$b]}$(url_path "$2" "$3")" ;;
    *) echo "https://127.0.0.1:${tls_port[$b]}$(url_path "$2" "$3")" ;;
  esac
}
declare -A url_cache hdr_cache
for v in h1 tls h2; do
  for t in "${selected[@]}"; do
    for s in 1k 64k 1m; do url_cache[$v,$t,$s]=$(url_for "$v" "$t" "$s"); done
  done
done
for t in "${selected[@]}"; do hdr_cache[$t]=$(auth_header "$t"); done

# ------------------------------------------------------------------------------- checks
curl_status() { # url [header] [extra curl args...]
  local url=$1 hdr=${2:-}
  shift 2 || shift $#
  curl -sS -k --noproxy '*' --max-time 10 -o /dev/null -w '%{http_code} %{size_download} %{http_version}' \
    ${hdr:+-H "$hdr"} "$@" "$url" 2>/dev/null || echo "000 0 0"
}
expect() { # what want got
  [[ $3 == "$2"* ]] || die "check failed: $1: expected '$2', got '$3'"
}
refused() { # what got: a token check must answer 401 or 403 (not 404, not 5xx)
  [[ $2 == 401\ * || $2 == 403\ * ]] || die "check failed: $1: expected 401 or 403, got '$2'"
}
tamper() { local t=$1; echo "${t:0:${#t}-10}AAAAAAAAAA"; } # break the signature
tls_info=()
cache_info=()
# What a cache target says about one answer: nginx its X-Cache-Status (HIT, MISS, ...),
# tollgate "hit" when the answer carries an Age header (tollgate's hits do, nothing
# else it sends does: the origin here sends none), else "no-age".
cache_seen() { # target url
  local h
  h=$(curl -sS -k --noproxy '*' --max-time 10 --http1.1 -o /dev/null -D - "$2" 2>/dev/null | tr -d '\r' || true)
  case $1 in
    nginx-cache) sed -n 's/^[Xx]-[Cc]ache-[Ss]tatus: *//p' <<<"$h" | head -n 1 | grep . || echo none ;;
    *) if grep -qi '^age:' <<<"$h"; then echo hit; else echo no-age; fi ;;
  esac
}
# Every cache target × variant × size once more after the checks (which filled the
# caches): the answer should be a hit. Printed and kept for the report, not fatal: a
# tollgate without the cache still runs, and the origin counts tell the rest.
cache_probe() { # when
  local t v s seen line=""
  for t in "${cache_targets[@]}"; do
    is_selected "$t" || continue
    for v in "${variants[@]}"; do
      # HTTP/1.1 only: an h2 request would find the same cache entries.
      [[ $v != h2 && " ${variant_targets[$v]} " == *" $t "* ]] || continue
      for s in "${sizes[@]}"; do
        seen=$(cache_seen "$t" "${url_cache[$v,$t,$s]}")
        line+="$t $v $s $seen, "
        [[ $seen == hit || $seen == HIT ]] || say "WARNING: $1: $t $v $s answered $seen, not a cache hit"
      done
    done
  done
  [[ -n $line ]] && { cache_info+=("$1: ${line%, }"); say "cache $1: ${line%, }"; }
  return 0
}
say "checking every target (200 with the right size; checks refuse missing and bad tokens)"
for t in "${selected[@]}"; do
  for s in "${sizes[@]}"; do
    expect "$t h1 $s" "200 ${size_bytes[$s]} 1.1" "$(curl_status "${url_cache[h1,$t,$s]}" "${hdr_cache[$t]}")"
  done
  # A cache target has the 1 KiB object cached by now (if 1k is among the sizes): the
  # refusals below then show that the check comes before the cache.
  p="/vod/bench/seg-1k.ts"
  b=$(base_of "$t")
  base="http://127.0.0.1:${plain_port[$b]}"
  case $t in
    nginx-securelink | nginx-cache)
      refused "$t without md5" "$(curl_status "$base$p")"
      refused "$t bad md5" "$(curl_status "$base$p?md5=AAAAAAAAAAAAAAAAAAAAAA&expires=$expires")"
      refused "$t other path's md5" "$(curl_status "$base/vod/bench/seg-64k.ts?md5=$(securelink_md5 "$p")&expires=$expires")"
      ;;
    haproxy-jwt | tollgate-hs256)
      refused "$t without token" "$(curl_status "$base$p")"
      refused "$t bad signature" "$(curl_status "$base$p" "Authorization: Bearer $(tamper "$hs_token")")"
      refused "$t other issuer" "$(curl_status "$base$p" "Authorization: Bearer $hs_other_issuer")"
      if [[ $t == haproxy-jwt ]]; then
        # HAProxy pins HS256 (tollgate rightly takes any configured key, the EdDSA one
        # too) and has no leeway on exp (tollgate allows token.leeway, 30 s).
        refused "$t EdDSA token" "$(curl_status "$base$p" "Authorization: Bearer $ed_token")"
        while (( $(now) < hs_short_minted + 2 )); do sleep 0.2; done
        refused "$t expired token" "$(curl_status "$base$p" "Authorization: Bearer $hs_short")"
      fi
      ;;
    tollgate-eddsa | tollgate-cache)
      refused "$t without token" "$(curl_status "$base$p")"
      refused "$t bad signature" "$(curl_status "$base$p?token=$(tamper "$ed_token")")"
      ;;
  esac
  for v in tls h2; do
    [[ " ${variants[*]} " == *" $v "* && " ${variant_targets[$v]} " == *" $t "* ]] || continue
    want=1.1
    extra=(--http1.1)
    [[ $v == h2 ]] && { want=2; extra=(--http2); }
    expect "$t $v" "200 1024 $want" "$(curl_status "${url_cache[$v,$t,1k]}" "${hdr_cache[$t]}" "${extra[@]}")"
  done
  if [[ " ${variants[*]} " == *" tls "* && " ${variant_targets[tls]} " == *" $t "* ]]; then
    cipher=$(curl -sSv -k --noproxy '*' --max-time 10 --http1.1 -o /dev/null ${hdr_cache[$t]:+-H "${hdr_cache[$t]}"} \
      "${url_cache[tls,$t,1k]}" 2>&1 | sed -n 's/^\* SSL connection using //p' | head -n 1)
    tls_info+=("$t: ${cipher:-unknown}")
  fi
done

cache_probe "after the checks"
# nginx-cache's processes, now that all exist: master, worker and the cache manager
# (its upkeep is part of serving from a cache), not the cache loader, which ends after
# its one pass over the (here empty) cache directory.
if is_selected nginx-cache; then
  read -r pid _ <<<"${proc_pids[nginx-cache]}"
  procs=$pid
  for k in $(children_of "$pid"); do
    [[ $(tr '\0' ' ' <"/proc/$k/cmdline" 2>/dev/null) == *"cache loader"* ]] || procs+=" $k"
  done
  proc_pids[nginx-cache]=$procs
  say "nginx-cache: CPU counted for pids $procs (master, worker, cache manager)"
fi

# ----------------------------------------------------------------------- measurement
raw="$run/raw.tsv"
printf 'phase\tround\tvariant\tsize\ttarget\trate\treq_s\tp50_us\tp99_us\tcpu_us_per_req\trequests\tbad\terrors\tstatus\torigin_reqs\tcache_hits\n' >"$raw"
failed_cells=0

# The origin's request counter (stub_status); the read counts itself, so a run's share is
# after - before - 1. Read outside the CPU window (the origin's CPU is not counted anyway).
origin_requests() {
  curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$origin_port/origin-status" 2>/dev/null |
    awk 'NR == 3 { print $3 }' || true
}
origin_delta() { # before after
  [[ -n $1 && -n $2 ]] && echo $(($2 - $1 - 1)) || echo ""
}
# tollgate-cache's own count of hits (tollgate_cache_requests_total{result="hit"}), read
# outside the CPU window: the scrape is not a request of the run.
cache_hits() { # target
  [[ $1 == tollgate-cache ]] || return 0
  curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$tollgate_cache_admin/metrics" 2>/dev/null |
    awk '/^tollgate_cache_requests_total\{.*result="hit"/ { n += $NF } END { printf "%d", n }' || true
}
hits_delta() { [[ -n $1 && -n $2 ]] && echo $(($2 - $1)) || echo ""; }

# One saturation run: wrk (HTTP/1.1) or h2load (HTTP/2), CPU ticks of the target around it.
sat_run() { # round variant size target
  local round=$1 v=$2 s=$3 t=$4 url hdr out t0 t1 requests bad errors dur_us bytes ok rps cpu status="ok"
  url=${url_cache[$v,$t,$s]}
  hdr=${hdr_cache[$t]}
  out="$run/out/sat-$round-$v-$s-$t.txt"
  local o0 o1 h0 h1
  o0=$(origin_requests)
  h0=$(cache_hits "$t")
  # shellcheck disable=SC2086
  t0=$(cpu_ticks ${proc_pids[$t]})
  if [[ $v == h2 ]]; then
    "${client_pin[@]}" timeout $((dur + 30)) h2load -t1 -c $((conns / 8 > 0 ? conns / 8 : 1)) -m 8 -D "$dur" \
      ${hdr:+-H "$hdr"} "$url" </dev/null >"$out" 2>&1 || status="FAIL(h2load exit $?)"
  else
    "${client_pin[@]}" timeout $((dur + 30)) wrk -t1 -c"$conns" -d"${dur}s" -s "$script_dir/conf/wrk.lua" \
      ${hdr:+-H "$hdr"} "$url" </dev/null >"$out" 2>&1 || status="FAIL(wrk exit $?)"
  fi
  # shellcheck disable=SC2086
  t1=$(cpu_ticks ${proc_pids[$t]})
  o1=$(origin_requests)
  h1=$(cache_hits "$t")
  if [[ $v == h2 ]]; then
    requests=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
    errors=$(sed -n 's/^requests: .* \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3/p' "$out" |
      awk '{ print $1 + $2 + $3 }')
    bad=$(sed -n 's/^status codes: [0-9]* 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/\1 \2 \3/p' "$out" |
      awk '{ print $1 + $2 + $3 }')
    dur_us=$((dur * 1000000))
    bytes=$(sed -n 's/^traffic: .*, [^,]* (\([0-9]*\)) data$/\1/p' "$out")
    ok=$requests
  else
    local line
    line=$(grep '^WRK ' "$out" | tail -n 1 || true)
    requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
    bad=$(sed -n 's/.* bad_status=\([0-9]*\).*/\1/p' <<<"$line")
    errors=$(sed -n 's/.* socket_errors=\([0-9]*\).*/\1/p' <<<"$line")
    dur_us=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$line")
    bytes=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' <<<"$line")
    ok=$((${requests:-0} - ${bad:-0}))
  fi
  if [[ -z $requests || -z $bad || -z $errors || -z $bytes || ${requests:-0} -eq 0 ]]; then
    [[ $status == ok ]] && status="FAIL(no result)"
    requests=${requests:-0} bad=${bad:-0} errors=${errors:-0} ok=0
  fi
  [[ $status == ok && $bad -gt 0 ]] && status="FAIL($bad non-200)"
  [[ $status == ok && $errors -gt 0 ]] && status="FAIL($errors socket errors)"
  if [[ $status == ok && $ok -gt 0 && $((bytes / ok)) -lt ${size_bytes[$s]} ]]; then
    status="FAIL(short bodies: $((bytes / ok)) bytes per answer)"
  fi
  rps=$(awk -v n="$ok" -v d="${dur_us:-1}" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" -v n="$ok" 'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1e6 / hz / n; else print "" }')
  local oreq hits
  oreq=$(origin_delta "$o0" "$o1")
  hits=$(hits_delta "$h0" "$h1")
  printf 'sat\t%s\t%s\t%s\t%s\t\t%s\t\t\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$v" "$s" "$t" "$rps" "$cpu" "$requests" "$bad" "$errors" "$status" "$oreq" "$hits" >>"$raw"
  [[ $status == ok ]] || failed_cells=$((failed_cells + 1))
  printf 'load: [sat %s/%s] %-3s %-4s %-17s %8s req/s  %8s µs/req  origin %7s  %s\n' "$round" "$rounds" "$v" "$s" "$t" "$rps" "$cpu" "${oreq:-?}" "$status"
}

# One fixed-rate run: oha with coordinated-omission correction; answers must all be 200.
# oha writes every answered request (its scheduled start and its end) to SQLite; p50/p99
# are computed from those, over requests scheduled after a warm-up and before the last
# 0.2 s: oha's own start-up (a TLS client takes ~50 ms to set up its 32 connections, and
# with CO correction every request scheduled meanwhile counts that wait) would otherwise
# be the p99 of every TLS cell, and HTTP/2 requests still in flight at the deadline are
# aborted by oha rather than awaited.
lat_run() { # round variant size target rate
  local round=$1 v=$2 s=$3 t=$4 rate=$5 url hdr out db t0 t1 cpu status="ok" fields total_ms
  local -a extra=()
  url=${url_cache[$v,$t,$s]}
  hdr=${hdr_cache[$t]}
  out="$run/out/lat-$round-$v-$s-$t.json"
  db="$run/out/lat-$round-$v-$s-$t.db"
  rm -f "$db"
  [[ $v != h1 ]] && extra+=(--insecure)
  [[ $v == h2 ]] && extra+=(--http2 -p 4)
  local c=$conns
  [[ $v == h2 ]] && c=$((conns / 4 > 0 ? conns / 4 : 1))
  # Long enough for lat_samples answers at this rate: 1 s at least, lat_max s at most.
  local lat_ms=$((lat_samples * 1000 / rate))
  ((lat_ms < 1000)) && lat_ms=1000
  ((lat_ms > lat_max * 1000)) && lat_ms=$((lat_max * 1000))
  total_ms=$((lat_warm_ms + lat_ms + 200))
  local o0 o1 h0 h1
  o0=$(origin_requests)
  h0=$(cache_hits "$t")
  # shellcheck disable=SC2086
  t0=$(cpu_ticks ${proc_pids[$t]})
  "${client_pin[@]}" timeout $((total_ms / 1000 + 30)) oha -z "${total_ms}ms" -q "$rate" --latency-correction \
    --wait-ongoing-requests-after-deadline -c "$c" --no-tui --output-format json --db-url "$db" "${extra[@]}" \
    ${hdr:+-H "$hdr"} "$url" </dev/null >"$out" 2>"$out.err" || status="FAIL(oha exit $?)"
  # shellcheck disable=SC2086
  t1=$(cpu_ticks ${proc_pids[$t]})
  o1=$(origin_requests)
  h1=$(cache_hits "$t")
  # -> requests non200 errors req_s p50_us p99_us
  fields=$("$py" - "$out" "$db" "$lat_warm_ms" "$total_ms" <<'EOF' 2>>"$out.err" || echo "0 0 0 0 - -"
import json, sqlite3, sys
out, db, warm, total = sys.argv[1], sys.argv[2], int(sys.argv[3]) / 1e3, int(sys.argv[4]) / 1e3
d = json.load(open(out))
codes = {str(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
n = sum(codes.values())
# Requests oha itself cut off at the deadline are not the server's errors.
errors = sum(v for k, v in (d.get("errorDistribution") or {}).items() if "deadline" not in k)
lo, hi = warm, total - 0.2
con = sqlite3.connect(db)
lat = sorted(end - sched for sched, end in con.execute(
    "SELECT start_latency_correction, end FROM oha"
    " WHERE start_latency_correction >= ? AND start_latency_correction < ?", (lo, hi)))
def pct(q):  # nearest rank
    return "%.0f" % (lat[max(0, -(-len(lat) * q // 100) - 1)] * 1e6) if lat else "-"
print(n, n - codes.get("200", 0), errors, "%.0f" % (len(lat) / (hi - lo)), pct(50), pct(99))
EOF
  )
  rm -f "$db"
  local requests bad errors reqs p50 p99
  read -r requests bad errors reqs p50 p99 <<<"$fields"
  [[ $status == ok && $requests -eq 0 ]] && status="FAIL(no result)"
  [[ $status == ok && $bad -gt 0 ]] && status="FAIL($bad non-200)"
  [[ $status == ok && $errors -gt 0 ]] && status="FAIL($errors errors)"
  [[ $status == ok && $p99 == - ]] && status="FAIL(no latency samples)"
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" -v n="$requests" 'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1e6 / hz / n; else print "" }')
  printf 'lat\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$v" "$s" "$t" "$rate" "$reqs" "$p50" "$p99" "$cpu" "$requests" "$bad" "$errors" "$status" \
    "$(origin_delta "$o0" "$o1")" "$(hits_delta "$h0" "$h1")" >>"$raw"
  [[ $status == ok ]] || failed_cells=$((failed_cells + 1))
  printf 'load: [lat %s/%s] %-3s %-4s %-17s @%6s req/s  p50 %6s µs  p99 %7s µs  %s\n' "$round" "$lat_rounds" "$v" "$s" "$t" "$rate" "$p50" "$p99" "$status"
}

targets_of() { # variant -> selected targets, rotated by the round so no target always goes first
  local v=$1 round=$2 t
  local -a list=()
  for t in ${variant_targets[$v]}; do is_selected "$t" && list+=("$t"); done
  local n=${#list[@]} i
  ((n > 0)) || return 0
  for ((i = 0; i < n; i++)); do echo "${list[(i + round - 1) % n]}"; done
}

t_measure=$(now)
say "warm-up: 1 s of HTTP/1.1 64 KiB per target (connection pools, caches)"
for t in "${selected[@]}"; do
  "${client_pin[@]}" timeout 30 wrk -t1 -c"$conns" -d1s ${hdr_cache[$t]:+-H "${hdr_cache[$t]}"} \
    "$(url_for h1 "$t" 64k)" </dev/null >/dev/null 2>&1 || true
done

say "saturation: $rounds round(s) × ${#variants[@]} variant(s) × ${#sizes[@]} size(s), ${dur}s each, $conns concurrent"
for ((r = 1; r <= rounds; r++)); do
  for v in "${variants[@]}"; do
    for s in "${sizes[@]}"; do
      while read -r t; do [[ -n $t ]] && sat_run "$r" "$v" "$s" "$t"; done < <(targets_of "$v" "$r")
    done
  done
done

# One fixed rate per variant and size for every target: a fraction of the slowest target's
# median saturated rate (failed runs left out), so that p99s compare at the same load.
declare -A fixed_rate
while read -r v s rate; do fixed_rate[$v,$s]=$rate; done < <(
  awk -F'\t' -v f="$rate_fraction" '
    $1 == "sat" && $14 == "ok" { k = $3 " " $4 " " $5; n[k]++; v[k, n[k]] = $7 }
    END {
      for (k in n) {
        m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
        med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        split(k, p, " "); key = p[1] " " p[2]
        if (!(key in lo) || med < lo[key]) lo[key] = med
      }
      for (key in lo) { r = int(lo[key] * f); if (r < 10) r = 10; print key, r }
    }' "$raw"
)

say "latency: oha at a fixed rate (${rate_fraction} × the slowest target's req/s), CO-corrected, ${lat_samples} answers (1-${lat_max} s) per run"
for ((r = 1; r <= lat_rounds; r++)); do
  for v in "${variants[@]}"; do
    for s in "${sizes[@]}"; do
      [[ -n ${fixed_rate[$v,$s]:-} ]] || continue
      while read -r t; do [[ -n $t ]] && lat_run "$r" "$v" "$s" "$t" "${fixed_rate[$v,$s]}"; done < <(targets_of "$v" "$r")
    done
  done
done
t_measure=$(( $(now) - t_measure ))
cache_probe "after the runs"

if [[ -n ${tollgate_pid:-} ]]; then
  tollgate_threads=$(for task in /proc/"$tollgate_pid"/task/*; do cat "$task/comm"; done | sort | uniq -c |
    awk '{ printf "%s%s×%s", (NR > 1 ? ", " : ""), $2, $1 }')
fi

# ---------------------------------------------------------------------------- memory
mem="$run/memory.txt"
: >"$mem"
t_memory=$(now)
# A fresh process (same config, other ports) for each measurement, so that "idle" means
# never loaded and neither measurement reuses memory the other one freed.
mem_start() { # target -> mem_pid, mem_pids (all processes), mem_port, mem_metrics
  if [[ $1 == nginx ]]; then
    make_nginx_conf nginx-mem "${mem_ports[0]}" "${mem_ports[1]}" "$run/nginx-mem.conf"
    start_nginx nginx-mem "$run/nginx-mem.conf"
    mem_pid=$last_pid
    mem_port=${mem_ports[0]}
    wait_port nginx-mem "$mem_pid" "$mem_port"
    mem_pids=$(nginx_workers "$mem_pid")
    mem_metrics=()
  else
    make_tollgate_conf "$run/tollgate-mem.toml" "${mem_ports[2]}" "${mem_ports[3]}" "${mem_ports[4]}" true
    start_tollgate tollgate-mem "$run/tollgate-mem.toml" "${mem_ports[2]}" "${mem_ports[3]}" "${mem_ports[4]}"
    mem_pid=$last_pid
    mem_port=${mem_ports[2]}
    wait_port tollgate-mem "$mem_pid" "$mem_port"
    mem_pids=$mem_pid
    mem_metrics=(--metrics "http://127.0.0.1:${mem_ports[4]}/metrics")
  fi
  # One request first: connection pools and the verification cache as in service.
  curl_status "http://127.0.0.1:$mem_port$(url_path "$1" 1k)" >/dev/null
  sleep 0.5
}
if [[ $memory == 1 ]]; then
  # The loaded targets are stopped first (the origin stays).
  for t in "${!proc_pids[@]}"; do
    read -r pid _ <<<"${proc_pids[$t]}"
    stop_pid "$pid"
  done
  for t in "${selected[@]}"; do
    case $t in nginx | tollgate-eddsa) ;; *) continue ;; esac
    name=${t%-eddsa}
    say "memory: $name: $streams stalled 1 MiB streams; $idle_conns idle keep-alive connections"
    mem_start "$t"
    # shellcheck disable=SC2086
    echo "$name idle_kib=$(rss_kib $mem_pids)" >>"$mem"
    "${client_pin[@]}" timeout 300 "$py" "$script_dir/clients.py" streams --port "$mem_port" \
      --path "$(url_path "$t" 1m)" --streams "$streams" --pids "${mem_pids// /,}" \
      >"$run/mem-streams-$name.txt" 2>&1 ||
      { cat "$run/mem-streams-$name.txt" >&2; die "$name: the stream client failed"; }
    stop_pid "$mem_pid"
    mem_start "$t"
    "${client_pin[@]}" timeout 300 "$py" "$script_dir/clients.py" idle --port "$mem_port" \
      --path "$(url_path "$t" 1k)" --conns "$idle_conns" --pids "${mem_pids// /,}" "${mem_metrics[@]}" \
      >"$run/mem-idle-$name.txt" 2>&1 ||
      { cat "$run/mem-idle-$name.txt" >&2; die "$name: the idle-connection client failed"; }
    stop_pid "$mem_pid"
    sed "s/^/$name idle_/" "$run/mem-idle-$name.txt" >>"$mem"
    sed "s/^/$name streams_/" "$run/mem-streams-$name.txt" >>"$mem"
  done
fi
t_memory=$(( $(now) - t_memory ))

# ---------------------------------------------------------------------------- report
mkdir -p "$out_dir"
cp "$raw" "$out_dir/raw.tsv"
rev=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo_root" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | head -n 1)
t_total=$(( $(now) - t_begin ))
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit=$rev${dirty:+ (with uncommitted changes in src/ or Cargo.*)}"
  echo "machine=$cpus CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }')"
  echo "kernel=$(uname -sr)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "command=$command_line"
  echo "pinning=$pinning"
  echo "settings=saturation: $rounds round(s), ${dur}s per run ($conns concurrent requests: wrk -t1 -c$conns; h2load -t1 -c$((conns / 8 > 0 ? conns / 8 : 1)) -m8), fixed rate: $lat_rounds round(s), ${lat_samples} answers, 1 to ${lat_max} s per run after ${lat_warm_ms} ms of warm-up (oha -c$conns, h2: -c$((conns / 4 > 0 ? conns / 4 : 1)) -p4) at ${rate_fraction} × the slowest target's req/s"
  echo "versions=$(nginx -v 2>&1 | sed 's/.*version: //'), $(haproxy -v | head -n 1 | awk '{ print "HAProxy " $3 }'), $(wrk --version 2>&1 | head -n 1 | awk '{ print "wrk " $2 }'), $(h2load --version | awk '{ print "h2load " $NF }'), $(oha --version), tollgate $("$bin" --version 2>/dev/null | awk '{ print $NF }')"
  echo "nginx_proxy_buffer_size=$proxy_buffer_size"
  echo "tollgate_threads=${tollgate_threads:-not run}"
  echo "tls=$(printf '%s; ' "${tls_info[@]}" | sed 's/; $//')"
  echo "cache=$(printf '%s; ' "${cache_info[@]}" | sed 's/; $//')"
  echo "timings=apt ${t_apt}s; oha ${t_oha}s ($oha_installed); tollgate build ${t_build}s; measurements ${t_measure}s; memory ${t_memory}s; total ${t_total}s"
  echo "idle_conns=$idle_conns"
  echo "streams=$streams"
} >"$run/meta.txt"
"$py" "$script_dir/report.py" --raw "$raw" --meta "$run/meta.txt" --memory "$mem" >"$out_dir/results.md" ||
  die "report.py failed"
echo
cat "$out_dir/results.md"
say "wrote $out_dir/results.md and $out_dir/raw.tsv (${t_total}s in all)"
if [[ $failed_cells -gt 0 ]]; then
  say "FAIL: $failed_cells run(s) failed (marked FAIL in the tables)" >&2
  exit 1
fi
