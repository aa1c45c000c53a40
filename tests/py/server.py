"""A small threaded HTTP server for the tests of `allocshim compare --load`: listens
on 127.0.0.1:$PORT and allocates per request (a bounded cache of byte strings).

Usage: server.py [MODE [TAG]]; MODE (or $SERVER_MODE, which wins) is
  serve         (default) serve until SIGTERM
  exit-early    exit with status 3 before listening
  never-listen  never open the port (sleeps)
  die-after=N   exit with status 4 after N requests
  ignore-term   serve, and ignore SIGTERM (so that it needs SIGKILL); also starts a
                child process in the same process group, which must not outlive it;
                both pids go to $SERVER_PIDFILE
TAG is ignored: tests put a unique word on the command line to find strays by.
"""
import http.server
import os
import signal
import subprocess
import sys
import threading
import time

mode = os.environ.get("SERVER_MODE") or (sys.argv[1] if len(sys.argv) > 1 else "serve")
if mode == "exit-early":
    sys.exit(3)
if mode == "never-listen":
    time.sleep(3600)
    sys.exit(0)

die_after = int(mode.split("=", 1)[1]) if mode.startswith("die-after=") else None
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A child in the same process group, as a worker would be; it reports its pid.
    child = subprocess.Popen(["sleep", "3600"])
    with open(os.environ.get("SERVER_PIDFILE", "/dev/null"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")

cache = {}
lock = threading.Lock()
served = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        n = int(self.path.strip("/") or "0")
        body = os.urandom(256) * (1 + n % 64)
        with lock:
            cache[n % 500] = body
            served += 1
            count = served
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if die_after is not None and count >= die_after:
            os._exit(4)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
