"""Allocation-heavy Python: dicts, lists and strings of mixed sizes built and
dropped, with a long-lived share that fragments the heap. Usage: python_alloc.py [n]"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
keep = []
for i in range(n):
    rec = {"id": i, "name": "item-%d" % i, "tags": [str(j) * (j % 7 + 1) for j in range(i % 12)]}
    blob = "x" * (16 + (i * 37) % 3000)
    if i % 10 == 0:
        keep.append((rec, blob))
    if len(keep) > 20_000:
        del keep[: len(keep) // 2]
print("python_alloc: kept", len(keep))
