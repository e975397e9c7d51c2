#!/usr/bin/env python3
"""Interop: nginx secure_link links, checked by a real nginx and by tollgate, must get
the same verdict.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. writes one media tree and serves it twice: nginx (`secure_link $arg_md5,$arg_expires;`
     `secure_link_md5 "<EXPR>";`, 403 when the link is invalid, 410 when it has expired)
     and tollgate (a route listing a `secure_link` format with the same expression, on a
     file:// origin);
  3. makes links the way nginx's documentation does (`echo -n '<expires><uri><addr>
     secret' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =`);
  4. sends each case to both and checks both accept (200) or both refuse (nginx 403/410,
     tollgate 401/403), and that tollgate's refusal reason is the expected one: a valid
     link, expired, tampered digest, changed expiry, another path, another client
     address (127.0.0.2), no digest, no expiry.

Usage: python3 scripts/interop-secure-link.py
Env:   TOLLGATE_BIN      use this binary instead of building one
       INTEROP_SABOTAGE=1 give tollgate another secret than nginx (the run must fail:
                         this proves the script can)
       E2E_KEEP_TMP=1    keep the temp dir
Needs: nginx with http_secure_link_module (Debian's nginx or nginx-light), openssl.
Prints "interop-secure-link: N passed, M failed"; exits non-zero on any failure.
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

NAME = "interop-secure-link"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import Fatal, run_checks, run_main, say, start_server  # noqa: E402

OVERALL_TIMEOUT_S = 120
SECRET = "interop-secret"
EXPR = "$secure_link_expires$uri$remote_addr " + SECRET
PATH = "/sl/demo/seg-1.ts"
OTHER = "/sl/demo/seg-2.ts"

NGINX_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/media;
        location /sl/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "{expr}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def doc_md5(text):
    """nginx's documented recipe, through openssl and tr."""
    out = subprocess.run(
        ["sh", "-c", "printf '%s' \"$1\" | openssl md5 -binary | openssl base64 | "
         "tr +/ -_ | tr -d =", "sh", text],
        check=True, capture_output=True, timeout=10)
    return out.stdout.decode().strip()


def link(path, expires, addr="127.0.0.1", secret=SECRET):
    return f"{path}?md5={doc_md5(f'{expires}{path}{addr} {secret}')}&expires={expires}"


def get(hostport, target, source="127.0.0.1"):
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-tollgate-reason") or ""
    finally:
        conn.close()


class Nginx:
    def __init__(self, ws_dir):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            raise Fatal("nginx is not installed (apt-get install nginx-light)")
        self.port = free_port()
        self.dir = ws_dir
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = os.path.join(ws_dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=ws_dir, port=self.port, expr=EXPR, user=user))
        self.proc = subprocess.Popen([nginx, "-p", ws_dir, "-c", conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(ws_dir, "nginx.err"), "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise Fatal(f"nginx exited {self.proc.returncode}: "
                                + open(os.path.join(ws_dir, "nginx.err")).read())
                time.sleep(0.05)
        raise Fatal("nginx did not listen within 10 s")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def configure_tollgate(ws):
    secret = "another-secret" if os.environ.get("INTEROP_SABOTAGE") else SECRET
    media = ws.path("media")
    with open(ws.config, "a") as f:
        f.write(f"""
[[origins]]
name = "interop"
upstreams = ["file://{media}"]

[[routes]]
name = "sl"
path = "/sl/{{rid}}/"
type = "vod"
origin = "interop"
formats = ["nginx"]

[[formats]]
name = "nginx"
kind = "secure_link"
expression = "$secure_link_expires$uri$remote_addr {secret}"
""")


def check_links(ws, checks, servers):
    for p in (PATH, OTHER):
        os.makedirs(os.path.dirname(ws.path("media" + p)), exist_ok=True)
        with open(ws.path("media" + p), "wb") as f:
            f.write(b"segment bytes")
    configure_tollgate(ws)
    server = start_server(ws, "serve", servers)
    gate = server.listening()["edge-plain"]
    nginx = Nginx(ws.dir)
    try:
        run_cases(checks, gate, f"127.0.0.1:{nginx.port}")
    finally:
        nginx.stop()


def run_cases(checks, gate, nginx):
    now = int(time.time())
    good = link(PATH, now + 600)
    digest = good.split("md5=")[1].split("&")[0]
    flipped = ("B" if digest[0] == "A" else "A") + digest[1:]
    cases = [
        # (what, target, client address, accepted, tollgate's reason when refused)
        ("a valid link", good, "127.0.0.1", True, ""),
        ("an expired link", link(PATH, now - 3600), "127.0.0.1", False, "expired"),
        ("a tampered digest", good.replace(digest, flipped), "127.0.0.1", False,
         "bad_signature"),
        ("a changed expiry", good.replace(f"expires={now + 600}", f"expires={now + 6000}"),
         "127.0.0.1", False, "bad_signature"),
        ("another path", good.replace(PATH, OTHER), "127.0.0.1", False, "bad_signature"),
        ("another client address", good, "127.0.0.2", False, "bad_signature"),
        ("no digest", f"{PATH}?expires={now + 600}", "127.0.0.1", False, "malformed"),
        ("no expiry", good.split("&expires")[0], "127.0.0.1", False, "malformed"),
        ("no credential", PATH, "127.0.0.1", False, "missing"),
    ]
    for what, target, source, accepted, reason in cases:
        n_status, _ = get(nginx, target, source)
        t_status, t_reason = get(gate, target, source)
        n_ok, t_ok = n_status == 200, t_status == 200
        n_refused = n_status in (403, 410)
        t_refused = t_status in (401, 403)
        if accepted:
            checks.check(n_ok and t_ok, f"{what}: nginx and tollgate both accept",
                         f"nginx {n_status}, tollgate {t_status} {t_reason}")
        else:
            checks.check(n_refused and t_refused and t_reason == reason,
                         f"{what}: nginx ({n_status}) and tollgate ({t_status} {reason}) "
                         "both refuse",
                         f"nginx {n_status}, tollgate {t_status} {t_reason!r}")


def main():
    say(NAME, f"expression: {EXPR.replace(SECRET, '<secret>')}")
    return run_checks(NAME, OVERALL_TIMEOUT_S, check_links)


if __name__ == "__main__":
    run_main(NAME, main)
