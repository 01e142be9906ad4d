#!/usr/bin/python3
"""A transformer worker process for the transformation tests, speaking the worker protocol of
docs/services/users.md: leases a request, looks its dataset up (the files given on the command
line), starts, transforms the first file, then keeps reporting that it is alive until it is
killed. Only the standard library: it runs wherever Debian's python3 does.

usage: transformer_worker.py BASE_URL TOKEN NAME FILE...
"""
import json
import sys
import time
import urllib.request

base, token, name, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def call(method, path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": "Bearer " + token,
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
        return response.status, json.loads(text) if text.startswith("{") else text


def main():
    while True:
        status, work = call("POST", "/servicex/internal/lease", {"worker": name})
        if status == 200:
            break
        time.sleep(0.05)
    endpoint = "/servicex/internal/transformation/" + work["request_id"]
    call("POST", endpoint + "/start", {})
    file_ids = [call("PUT", endpoint + "/files", {"paths": path, "file_events": 10})[1]["file-id"]
                for path in files]
    call("PUT", endpoint + "/complete", {"files": len(files), "files-skipped": 0, "total-events": 10 * len(files),
                                         "total-bytes": 0, "elapsed-time": 0})
    call("PUT", endpoint + "/file-complete", {"file-id": file_ids[0], "file-path": files[0], "status": "success",
                                              "total-time": 3, "total-bytes": 100, "total-events": 10,
                                              "avg-rate": 2.5, "num-messages": 4})
    while True:  # working on the next file, for ever: the test kills it here
        call("POST", endpoint + "/status", {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000"),
                                            "severity": "info", "info": name + " alive"})
        time.sleep(0.2)


main()
