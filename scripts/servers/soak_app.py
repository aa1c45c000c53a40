"""The gunicorn soak app (scripts/soak): a WSGI app whose every request does the work
of one job of shape.py, numbered in arrival order. Run with gthread workers
(`--threads`); Redis is at REDIS_URL, one connection per thread."""
import itertools
import os
import threading

import redis

import shape

_numbers = itertools.count(1)
_local = threading.local()


def app(environ, start_response):
    job = next(_numbers)  # atomic under the GIL
    if not hasattr(_local, "redis"):
        _local.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    built = shape.run(job, _local.redis)
    body = f'{{"request":{job},"bytes":{built}}}\n'.encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
