#!/usr/bin/env python3
"""Load from several client locations through the gateway; prints one JSON line of results.

Each location runs CONCURRENCY keep-alive connections doing GET /FUNCTION until DURATION seconds have passed.
A location is announced the way a CDN in front of the gateway would: geo headers (cloudfront-viewer-latitude /
-longitude) or an x-forwarded-for address (located by the gateway's GeoIP database). Every answer is recorded
with its time, status and the host that served it (x-verge-host), so the caller can split results at the moment
it killed a host.
"""
import http.client
import json
import sys
import threading
import time

gateway_host, gateway_port = sys.argv[1], int(sys.argv[2])
function, duration, concurrency = sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
# LOCATION specs: name=lat,lon (geo headers) or name@IP (x-forwarded-for)
locations = sys.argv[6:]

results = []
lock = threading.Lock()
deadline = time.time() + duration


def headers_for(spec):
    if "=" in spec:
        name, point = spec.split("=", 1)
        lat, lon = point.split(",")
        return name, {"cloudfront-viewer-latitude": lat, "cloudfront-viewer-longitude": lon}
    name, ip = spec.split("@", 1)
    return name, {"x-forwarded-for": ip}


def worker(spec):
    name, headers = headers_for(spec)
    connection = None
    while time.time() < deadline:
        started = time.time()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(gateway_host, gateway_port, timeout=10)
            connection.request("GET", "/" + function, headers=headers)
            response = connection.getresponse()
            response.read()
            record = (name, started, response.status, response.getheader("x-verge-host") or "-", "")
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = None
        except Exception as error:  # a failed call: the connection is replaced
            record = (name, started, 0, "-", type(error).__name__)
            try:
                connection.close()
            except Exception:
                pass
            connection = None
        with lock:
            results.append(record)


threads = [threading.Thread(target=worker, args=(spec,)) for spec in locations for _ in range(concurrency)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
json.dump(results, sys.stdout)
