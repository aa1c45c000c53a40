"""A job worker for the tests of `allocshim compare --load --ready`: it listens on no
port. `worker.py run DIR` waits a moment (a start-up), creates DIR/ready-$PORT, then
takes job files from DIR/jobs-$PORT/ with 4 threads, allocating per job (a bounded
cache of byte strings), and deletes each when done. `worker.py enqueue DIR N` is its
load: it writes N jobs, waits until all are taken (at most 60 s), and prints the
throughput as `allocshim-metric jobs_per_s` and the count as `jobs`; exit status 1 if
jobs were left over.

Usage: worker.py run DIR [TAG] | worker.py enqueue DIR N"""
import os
import sys
import threading
import time

what, top = sys.argv[1], sys.argv[2]
port = os.environ["PORT"]
jobs = os.path.join(top, f"jobs-{port}")

if what == "enqueue":
    n = int(sys.argv[3])
    os.makedirs(jobs, exist_ok=True)
    start = time.monotonic()
    for i in range(n):
        with open(os.path.join(jobs, f"{i}.tmp"), "w") as f:
            f.write(str(i))
        os.rename(os.path.join(jobs, f"{i}.tmp"), os.path.join(jobs, f"{i}.job"))
    while os.listdir(jobs) and time.monotonic() - start < 60:
        time.sleep(0.01)
    left = len(os.listdir(jobs))
    print(f"allocshim-metric jobs_per_s {(n - left) / (time.monotonic() - start):.2f} jobs/s")
    print(f"allocshim-metric jobs {n - left} count")
    sys.exit(1 if left else 0)

time.sleep(0.5)
os.makedirs(jobs, exist_ok=True)
open(os.path.join(top, f"ready-{port}"), "w").close()
cache = {}
lock = threading.Lock()


def work():
    while True:
        for name in sorted(os.listdir(jobs)):
            if not name.endswith(".job"):
                continue
            path = os.path.join(jobs, name)
            try:
                n = int(open(path).read())
                os.unlink(path)
            except (OSError, ValueError):
                continue  # another thread took it
            with lock:
                cache[n % 200] = os.urandom(256) * (1 + n % 64)
        time.sleep(0.005)


for _ in range(4):
    threading.Thread(target=work, daemon=True).start()
while True:
    time.sleep(3600)
