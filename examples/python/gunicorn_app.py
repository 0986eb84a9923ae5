"""A gunicorn app (sync workers) whose every request calls a vendor API through one shared
bucket, with a plain requests.Session: the adapter makes each request wait for its turn in
the bucket all workers share, and reports each response (a 429 pauses every worker).

    RATELIMIT_TABLE=/dev/shm/ratelimit VENDOR_URL=https://api.vendor.example/ \\
        gunicorn -w 8 gunicorn_app:app

RATELIMIT_BUCKET names the bucket (default "foundry"); it must exist in the table
(`ratelimitctl apply /etc/ratelimit.conf`, or ratelimit.Table.from_config()).
Each response is JSON: the vendor's status and the admission instant (CLOCK_MONOTONIC ns).
"""
import json
import os

import requests

import ratelimit
import ratelimit.requests

VENDOR_URL = os.environ.get("VENDOR_URL", "http://127.0.0.1:8080/")
_session = None


def session() -> requests.Session:
    """One session per worker process, made after gunicorn forked it."""
    global _session
    if _session is None:
        table = ratelimit.Table(os.environ.get("RATELIMIT_TABLE"), create=False)
        bucket = table.bucket(os.environ.get("RATELIMIT_BUCKET", "foundry"))
        _session = requests.Session()
        _session.mount(VENDOR_URL, ratelimit.requests.Adapter(bucket, timeout=25.0))
    return _session


def app(environ, start_response):
    try:
        r = session().get(VENDOR_URL + "v1/things", timeout=10)
        body = {"status": r.status_code, "at_ns": r.ratelimit_decision.at_ns}
    except ratelimit.Timeout as e:
        body = {"status": "timeout", "detail": e.detail}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
