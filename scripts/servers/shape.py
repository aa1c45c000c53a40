"""The work of one job or request in the soak workloads (scripts/soak), in Python:
the same shape as scripts/servers/shape.rb (keep the two in step). Threads wait on
I/O that releases the GIL (Redis round trips, file reads, short sleeps) while they
build strings from ~100 B to ~1 MB; most die with the job, a few stay in a bounded
cache that turns over; one job in HEAVY_EVERY builds tens of MiB. Everything is drawn
from a generator seeded by the job's number."""
import json
import os
import random
import threading
import time

SEED = int(os.environ.get("SOAK_SEED", "1"))
HEAVY_EVERY = int(os.environ.get("SOAK_HEAVY_EVERY", "25"))
HEAVY_MIB = int(os.environ.get("SOAK_HEAVY_MIB", "32"))
SLOTS = 2000
CACHE = {}
LOCK = threading.Lock()
FILE = os.environ.get("SOAK_FILE") or os.path.abspath(__file__)


def size(rng, lo, hi):
    """Log-uniform between lo and hi."""
    return int(lo * (hi / lo) ** rng.random())


def build(rng, nbytes):
    """A string of about `nbytes`, built one of the ways Python code builds them."""
    way = rng.randrange(3)
    if way == 0:
        return "x" * nbytes
    if way == 1:
        s = ""
        while len(s) < nbytes:
            s += "a" * rng.randint(16, 2048)
        return s
    return json.dumps([f"item-{i}" for i in range(max(nbytes // 40, 1))])


def wait(rng, redis):
    """Waits on I/O as a job does, the GIL released meanwhile."""
    redis.set(f"soak:k{rng.randrange(1000)}", "v" * rng.randint(10, 2000))
    redis.get(f"soak:k{rng.randrange(1000)}")
    time.sleep(rng.random() * 0.004)
    with open(FILE, "rb") as f:
        f.read(rng.randint(100, 65536))


def run(job, redis):
    """Runs job number `job`; returns the bytes it built."""
    rng = random.Random(SEED * 1_000_003 + job)
    parts = []
    if job % HEAVY_EVERY == 0:
        total = 0
        while total < HEAVY_MIB << 20:
            parts.append(build(rng, size(rng, 10_000, 1_000_000)))
            total += len(parts[-1])
            if len(parts) % 16 == 0:
                wait(rng, redis)
    else:
        for k in range(rng.randint(10, 40)):
            parts.append(build(rng, size(rng, 100, 65_536)))
            if k % 4 == 0:
                wait(rng, redis)
    if rng.random() < 0.5:
        kept = parts[rng.randrange(len(parts))][: size(rng, 100, 20_000)]
        with LOCK:
            CACHE[rng.randrange(SLOTS)] = kept
    built = sum(len(p) for p in parts)
    redis.setex(f"soak:result:{job}", 60, str(built))
    return built
