"""A JSON endpoint for gunicorn with threads (Debian's gunicorn, /usr/bin/python3),
used by scripts/soak to measure allocators on a threaded Python server:
each request builds a list of records, renders it as JSON and stores a piece of
varying size in a cache shared by all threads (bounded, so RSS growth is
fragmentation, not data)."""
import json
import random
import threading

CACHE = {}
LOCK = threading.Lock()


def app(environ, start_response):
    rows = [
        {"id": i, "name": f"user-{random.randrange(100000)}", "email": f"user{i}@example.com",
         "tags": ["t" * random.randint(1, 64) for _ in range(random.randint(1, 8))], "score": random.random()}
        for i in range(random.randint(20, 200))
    ]
    body = json.dumps({"rows": rows}).encode()
    with LOCK:
        CACHE[random.randrange(2000)] = body[: random.randint(100, 20000)]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
