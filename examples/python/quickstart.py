"""Quickstart: one budget shared by every process of the host, from Python.

    python3 quickstart.py [VENDOR_URL]

Defines the bucket (200 requests per rolling 60 s, as the Foundry API allows), then sends
requests through a requests.Session whose adapter waits for each request's turn and
reports each response: a 429 pauses every process drawing from the bucket.
"""
import sys

import requests

import ratelimit
import ratelimit.requests

url = sys.argv[1] if len(sys.argv) > 1 else "https://api.foundry.example/"

# The table every process shares (RATELIMIT_TABLE, else /dev/shm/ratelimit). With a config
# file, ratelimit.Table.from_config() opens the table it names and applies its buckets.
table = ratelimit.Table()
foundry = table.define("foundry", "200/60s")

session = requests.Session()
session.mount(url, ratelimit.requests.Adapter(foundry, timeout=30.0))
for i in range(3):
    r = session.get(url + "api/v1/things")  # waits for its turn, then reports the answer
    print(r.status_code, "remaining", r.ratelimit_decision.remaining)

# Without an HTTP adapter: take a unit, or wait for one, and report what the vendor said.
if foundry.try_acquire():
    print("admitted at once")
with foundry.limit(timeout=5.0):
    status, headers = 200, {"X-RateLimit-Remaining": "150"}  # your call to the vendor
foundry.report(status, headers)
print(foundry.info().counters)
