"""Shared plumbing for the Python end-to-end scripts (standard library only).

Used by scripts/crash-refresh.py, scripts/jwks-pyjwt.py, scripts/azure-aad-pyjwt.py,
scripts/keys-external.py, scripts/e2e-ops.py, scripts/e2e-live.py, scripts/e2e-browsers.py,
scripts/e2e-fleet.py and (for `gate_config`) scripts/rss-1gib.sh; not a script itself.

- `binary()`      : TOLLGATE_BIN (relative to the caller's directory) or `cargo build`.
- `Workspace`     : a temp dir holding a fresh copy of config/tollgate.toml in
                    `$tmp/config/` and `$tmp/sample` -> the repository's `sample/`, so the
                    config's `../data`, `../certs` and `../sample` land in the temp dir;
                    `cli()` runs a subcommand that prints JSON, `cli_text()` any other.
- `Server`        : `tollgate serve` on 127.0.0.1:0 (all three listeners), the admin
                    address parsed from the `tollgate listening:` line; stopped by its own
                    PID only (SIGTERM, bounded wait, SIGKILL); `listening()` gives every
                    field of that line (edge-tls, edge-plain, admin, pid).
- `http()`        : one request to 127.0.0.1, never through a proxy, bounded in time.
- `Checks`        : `PASS`/`FAIL` lines and the final `NAME: N passed, M failed`.
- `run_checks`    : a script's checks on a `Workspace`, then the cleanup and the summary.
- `gate_config`   : the config of a script that writes its own (its base sections, and
                    the script's edge lines and sections after them).
- `require_pyjwt` : exit 2 unless PyJWT and its crypto backend import; say its version.
- `edge_get`      : GET from the edge from a chosen local address: (status, reason).
"""

import http.client as http_client  # `http` is this module's request helper
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTUP_TIMEOUT_S = 30  # until the `tollgate listening:` line
CLI_TIMEOUT_S = 60  # per management subcommand (user add hashes with argon2)
BUILD_TIMEOUT_S = 1800  # cargo build from cold

# Everything talks to 127.0.0.1 only; never route that through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_pyjwt(name):
    """Exit with code 2 (and the closing `N passed, M failed` line) unless PyJWT imports
    with its `cryptography` backend, which RS256 and EdDSA need; else say which PyJWT runs."""
    try:
        import jwt
        from jwt.algorithms import has_crypto
    except ImportError:
        has_crypto = None
    if has_crypto:
        say(name, f"PyJWT {jwt.__version__} ({sys.executable})")
        return
    what = "not installed" if has_crypto is None else "installed without 'cryptography'"
    print(f"{name}: FATAL: PyJWT is {what} for {sys.executable}; install it with: "
          f"{sys.executable} -m pip install 'pyjwt[crypto]'", file=sys.stderr)
    print(f"{name}: 0 passed, 1 failed")
    sys.exit(2)


# The base of a script's own config (gate_config); paths are relative to its directory.
_GATE_CONFIG = """\
# {name}: written for one run of the script
[edge]
tls_listen = "127.0.0.1:0"
plain_listen = "127.0.0.1:0"
{edge}
[tls]
dev_generate = true

[[tls.certs]]
cert = "certs/cert.pem"
key = "certs/key.pem"
server_names = ["localhost", "127.0.0.1"]

[admin]
listen = "127.0.0.1:0"

[store]
path = "data/tollgate.db"

[token]
issuer = "tollgate-{name}"
leeway = "{leeway}"

[[keys]]
kid = "dev"
alg = "EdDSA"
public = "keys/dev.pub.pem"
private = "keys/dev.pem"
active = true
dev_generate = true
"""


def gate_config(name, leeway, edge="", body=""):
    """A whole config for a script that writes its own instead of copying the shipped one:
    edge listeners (TLS with a generated dev certificate, plain) and the admin listener on
    127.0.0.1:0, the store, certificates and a generated Ed25519 key `dev` in the config's
    directory, issuer `tollgate-<name>` with `leeway`; `edge` is more `[edge]` lines,
    `body` the script's own sections (origins, routes, resources, [manifest] ...)."""
    return _GATE_CONFIG.format(name=name, leeway=leeway, edge=edge) + body


class Fatal(Exception):
    """Setup could not be completed: the script cannot run its checks."""


def say(name, msg, err=False):
    print(f"{name}: {msg}", file=sys.stderr if err else sys.stdout, flush=True)


def binary(name, release=False):
    """The tollgate binary: $TOLLGATE_BIN, else a fresh `cargo build [--release]`."""
    env_bin = os.environ.get("TOLLGATE_BIN")
    if env_bin:
        path = os.path.abspath(env_bin)  # relative to the caller's directory
    else:
        cmd = ["cargo", "build"] + (["--release"] if release else [])
        say(name, f"building tollgate ({' '.join(cmd)})")
        try:
            subprocess.run(cmd, cwd=REPO_ROOT, check=True, timeout=BUILD_TIMEOUT_S,
                           stdin=subprocess.DEVNULL)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            raise Fatal(f"cargo build failed: {e}") from e
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO_ROOT, "target")
        path = os.path.join(os.path.abspath(os.path.join(REPO_ROOT, target)),
                            "release" if release else "debug", "tollgate")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise Fatal(f"tollgate binary not found or not executable: {path}")
    return path


class Workspace:
    """A temp dir with a fresh copy of the shipped config and a link to sample/."""

    def __init__(self, name, bin_path):
        self.name = name
        self.bin = bin_path
        self.dir = tempfile.mkdtemp(prefix=f"tollgate-{name}.",
                                    dir=os.environ.get("TMPDIR") or None)
        os.mkdir(os.path.join(self.dir, "config"))
        self.config = os.path.join(self.dir, "config", "tollgate.toml")
        shutil.copyfile(os.path.join(REPO_ROOT, "config", "tollgate.toml"), self.config)
        os.symlink(os.path.join(REPO_ROOT, "sample"), os.path.join(self.dir, "sample"))
        with open(self.config, "rb") as f:
            self.settings = tomllib.load(f)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def cli(self, *args, stdin=None):
        """Run `tollgate <args> --config <copy>`; return its JSON output."""
        cmd = [self.bin, *args, "--config", self.config]
        try:
            p = subprocess.run(cmd, input=(stdin or "").encode(), capture_output=True,
                               timeout=CLI_TIMEOUT_S, cwd=self.dir)
        except subprocess.TimeoutExpired as e:
            raise Fatal(f"{' '.join(args)}: no answer within {CLI_TIMEOUT_S}s") from e
        if p.returncode != 0:
            raise Fatal(f"tollgate {' '.join(args)} exited {p.returncode}: "
                        f"{p.stderr.decode(errors='replace').strip()}")
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise Fatal(f"tollgate {' '.join(args)} printed no JSON: {p.stdout!r}") from e

    def cli_text(self, *args):
        """Run `tollgate <args> --config <copy>`; return its standard output as text
        (for subcommands that print no JSON: `token mint`, `keys rotate`)."""
        cmd = [self.bin, *args, "--config", self.config]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=CLI_TIMEOUT_S, cwd=self.dir)
        except subprocess.TimeoutExpired as e:
            raise Fatal(f"{' '.join(args)}: no answer within {CLI_TIMEOUT_S}s") from e
        if p.returncode != 0:
            raise Fatal(f"tollgate {' '.join(args)} exited {p.returncode}: "
                        f"{p.stderr.decode(errors='replace').strip()}")
        return p.stdout.decode(errors="replace")

    def remove(self, keep):
        if keep:
            say(self.name, f"kept {self.dir}", err=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """One `tollgate serve` process on ephemeral loopback ports."""

    def __init__(self, ws, label, taskset=None):
        self.ws = ws
        self.label = label
        self.out = ws.path(f"server-{label}.out")
        self.err = ws.path(f"server-{label}.err")
        cmd = [ws.bin, "serve", "--config", ws.config,
               "--edge-tls-listen", "127.0.0.1:0",
               "--edge-plain-listen", "127.0.0.1:0",
               "--admin-listen", "127.0.0.1:0"]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen((taskset or []) + cmd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, cwd=ws.dir)
        self.pid = self.proc.pid
        self.admin = None

    def wait_ready(self, timeout=STARTUP_TIMEOUT_S):
        """Wait for the `tollgate listening:` line; return the admin HOST:PORT."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out, "rb") as f:
                text = f.read().decode(errors="replace")
            m = re.search(r"^tollgate listening: .*\badmin=(\S+)", text, re.M)
            if m:
                self.admin = m.group(1)
                return self.admin
            if self.proc.poll() is not None:
                raise Fatal(f"tollgate ({self.label}) exited with status "
                            f"{self.proc.returncode} before it was ready")
            time.sleep(0.05)
        raise Fatal(f"tollgate ({self.label}): no 'tollgate listening:' line within {timeout}s")

    def listening(self):
        """The fields of the `tollgate listening:` line (after wait_ready), e.g.
        {"edge-tls": "127.0.0.1:41234", "edge-plain": ..., "admin": ..., "pid": "123"}."""
        with open(self.out, "rb") as f:
            text = f.read().decode(errors="replace")
        m = re.search(r"^tollgate listening: (.*)$", text, re.M)
        if not m:
            raise Fatal(f"tollgate ({self.label}): no 'tollgate listening:' line")
        return dict(f.split("=", 1) for f in m.group(1).split() if "=" in f)

    def url(self, path):
        return f"http://{self.admin}{path}"

    def alive(self):
        return self.proc.poll() is None

    def kill9(self, timeout=10):
        """SIGKILL this server (its own PID) and reap it."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=timeout)

    def stop(self):
        """SIGTERM, up to 5 s to drain, then SIGKILL; always reaps."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                say(self.ws.name, f"server {self.pid} ignored SIGTERM for 5 s; SIGKILL",
                    err=True)
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        else:
            self.proc.wait(timeout=1)

    def logs(self, lines=60):
        out = [f"----- tollgate ({self.label}) stdout -----"]
        for p, n in ((self.out, None), (self.err, lines)):
            try:
                with open(p, "rb") as f:
                    text = f.read().decode(errors="replace").splitlines()
            except OSError:
                text = []
            if n is not None:
                out.append(f"----- tollgate ({self.label}) stderr (last {n} lines) -----")
                text = text[-n:]
            out.extend(text)
        return "\n".join(out)


def http(method, url, body=None, headers=None, timeout=10):
    """One request. Returns (status, body bytes); raises OSError on transport failure."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def edge_get(gate, target, headers=None, source="127.0.0.1"):
    """GET `target` from the edge at `gate` ("host:port") from the local address
    `source` (127.0.0.0/8 gives distinct clients); returns (status, x-tollgate-reason)."""
    host, port = gate.rsplit(":", 1)
    conn = http_client.HTTPConnection(host, int(port), timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-tollgate-reason") or ""
    finally:
        conn.close()


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def ok(self, what):
        self.passed += 1
        say(self.name, f"PASS {what}")

    def fail(self, what):
        self.failed += 1
        say(self.name, f"FAIL {what}", err=True)

    def check(self, cond, what, why=""):
        if cond:
            self.ok(what)
        else:
            self.fail(f"{what}{': ' + why if why else ''}")
        return cond

    def summary(self):
        """The closing line; returns the script's exit code."""
        say(self.name, f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def watchdog(seconds):
    """Abort the whole script after `seconds`, or on SIGTERM, by raising in the main
    thread, so that `finally:` blocks still stop the servers the script started."""

    def fire(_sig, _frame):
        raise Fatal(f"overall time limit of {seconds}s exceeded")

    def term(_sig, _frame):
        raise Fatal("terminated (SIGTERM)")

    signal.signal(signal.SIGALRM, fire)
    signal.signal(signal.SIGTERM, term)
    signal.alarm(seconds)


def count_failure(name, checks, exc):
    """An exception ended a script's checks: say why (a Fatal in one line, anything else
    — a bug, an answer of an unexpected shape — with its traceback) and count a failure.
    Call it from an `except` clause, so that the cleanup after it still runs."""
    if isinstance(exc, Fatal):
        say(name, f"FATAL: {exc}", err=True)
    else:
        traceback.print_exc()
    checks.failed += 1


def stop_servers(name, servers, checks, log_lines=60):
    """Stop every server (one that fails to stop does not keep the others running);
    after a failed check, print each one's log tail."""
    for s in servers:
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            say(name, f"stopping server {s.pid}: {e}", err=True)
    if checks.failed:
        for s in servers:
            print(s.logs(lines=log_lines), file=sys.stderr)


def start_server(ws, label, servers):
    """A `Server` on `ws`, listed in `servers` (for `run_checks` to stop) before it is
    waited for, so that one that never gets ready is stopped too."""
    server = Server(ws, label)
    servers.append(server)
    server.wait_ready()
    return server


def run_checks(name, timeout_s, checks_on, release=False):
    """The frame of a script whose checks run on a fresh `Workspace`: build (`release`:
    the release binary), start the
    watchdog, run `checks_on(ws, checks, servers)` (which starts its servers with
    `start_server(ws, label, servers)`), count an exception as a failure, stop the servers,
    remove the workspace (E2E_KEEP_TMP=1 keeps it), print the summary. Returns the exit
    code."""
    keep = bool(os.environ.get("E2E_KEEP_TMP"))
    checks = Checks(name)
    bin_path = binary(name, release=release)
    watchdog(timeout_s)  # after the build, which has its own bound
    ws = Workspace(name, bin_path)
    servers = []
    try:
        checks_on(ws, checks, servers)
    except Exception as e:  # Fatal, a bug, an answer of an unexpected shape: still clean up
        count_failure(name, checks, e)
    finally:
        stop_servers(name, servers, checks)
        ws.remove(keep)
    return checks.summary()


def run_main(name, main):
    """Run a script's main() and exit with its code; a Fatal raised before any
    workspace existed (e.g. the build) still prints the closing `N passed, M failed` line."""
    try:
        sys.exit(main())
    except Fatal as e:
        say(name, f"FATAL: {e}", err=True)
        say(name, "0 passed, 1 failed")
        sys.exit(2)
