"""A tiny load generator for the tests of `allocshim compare --load`: REQUESTS GETs
to 127.0.0.1:$PORT from THREADS threads over DURATION seconds at most; prints the
figures as `allocshim-metric` lines and, like wrk, the failed requests. Exit status 1
when it could not connect at all.

Usage: load.py [REQUESTS] [THREADS]"""
import http.client
import os
import sys
import threading
import time

total = int(sys.argv[1]) if len(sys.argv) > 1 else 200
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
port = int(os.environ["PORT"])
done = [0]
failed = [0]
lock = threading.Lock()


def worker(k):
    conn = None
    for i in range(k, total, threads):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", f"/{i}")
            r = conn.getresponse()
            r.read()
            ok = r.status == 200
        except OSError:
            conn, ok = None, False
        with lock:
            done[0] += 1
            failed[0] += not ok


start = time.monotonic()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
elapsed = time.monotonic() - start
if failed[0] == done[0]:
    print("no request succeeded", file=sys.stderr)
    sys.exit(1)
print(f"allocshim-metric requests {done[0] - failed[0]} count")
print(f"Requests/sec: {(done[0] - failed[0]) / elapsed:.2f}")
if failed[0]:
    print(f"  Non-2xx or 3xx responses: {failed[0]}")
