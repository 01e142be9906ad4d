#!/usr/bin/env python3
# Many file cache uploads at once, from one process: CONNECTIONS sockets to 127.0.0.1 each POST
# ROUNDS multipart bodies of SIZE bytes (one after another, kept alive) to /v1/cache/<id>, all
# sockets sending at the same time: each socket to its own id again and again (each upload after
# the first replaces a file), or with --fresh each upload to an id of its own. It samples the server's VmRSS while they run and prints one
# JSON object: uploads, failures, seconds, MiB/s, req/s, peak VmRSS and VmHWM (kB). With
# --new-ids N it only creates N cache ids (POST /v1/cache_id) into the --ids file.
#
# Used by bench/upload_concurrency.sh. asyncio with non-blocking sockets rather than one curl per
# upload: 500 curl processes would take the CPU the server is measured on, and sock_sendall sends
# straight from one shared payload (no per-upload copy on the client side).
import argparse
import asyncio
import http.client
import json
import os
import socket
import sys
import time

BOUNDARY = "depotbenchboundary7d91c0"
SLICE = 256 * 1024  # bytes per send call


def vm_kb(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def request_head(port, cache_id, token, body_bytes):
    return (f"POST /v1/cache/{cache_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {body_bytes}\r\n\r\n").encode()


async def read_response(loop, sock, buffer):
    """Reads one response (Content-Length framed); returns (status, rest of the buffer)."""
    while b"\r\n\r\n" not in buffer:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise ConnectionError("the server closed the connection before answering")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise ConnectionError("the server closed the connection inside a response")
        rest += data
    return status, rest[length:]


async def client(loop, args, cache_ids, payload, results):
    preamble = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
    epilogue = f"\r\n--{BOUNDARY}--\r\n".encode()
    body_bytes = len(preamble) + len(payload) + len(epilogue)
    view = memoryview(payload)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", args.port))
        buffer = b""
        for cache_id in cache_ids:
            await loop.sock_sendall(sock, request_head(args.port, cache_id, args.token, body_bytes) + preamble)
            for start in range(0, len(payload), SLICE):
                await loop.sock_sendall(sock, view[start:start + SLICE])
            await loop.sock_sendall(sock, epilogue)
            status, buffer = await read_response(loop, sock, buffer)
            if status == 200:
                results["ok"] += 1
            else:
                results["failed"] += 1
                results.setdefault("statuses", []).append(status)
    except (OSError, ConnectionError) as error:
        results["failed"] += len(cache_ids)
        results.setdefault("errors", []).append(str(error))
    finally:
        sock.close()


async def sample_rss(pid, peak, stop):
    while not stop.is_set():
        peak[0] = max(peak[0], vm_kb(pid, "VmRSS"))
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except asyncio.TimeoutError:
            pass


def new_cache_ids(port, token, count, path):
    """Creates `count` cache ids over one kept-alive connection and writes them to `path`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ids = []
    for i in range(count):
        body = json.dumps({"bench": f"upload-{os.getpid()}-{time.time_ns()}-{i}"})
        connection.request("POST", "/v1/cache_id", body, {"Authorization": token, "Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            sys.exit(f"upload_clients.py: POST /v1/cache_id answered {response.status}: {answer[:200]!r}")
        ids.append(json.loads(answer)["cache_id"])
    with open(path, "w") as ids_file:
        ids_file.write("\n".join(ids) + "\n")


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, help="the server, for its VmRSS")
    parser.add_argument("--token", default="non_admin_token")
    parser.add_argument("--new-ids", type=int, metavar="N", help="only create N cache ids into --ids")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--rounds", type=int, default=1, help="uploads per connection")
    parser.add_argument("--size", type=int, help="bytes per uploaded file")
    parser.add_argument("--ids", required=True, help="file with one cache id per line, one per connection")
    parser.add_argument("--fresh", action="store_true",
                        help="each upload to a cache id of its own (--ids holds connections x rounds), "
                             "so that none replaces a file")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.new_ids:
        new_cache_ids(args.port, args.token, args.new_ids, args.ids)
        return
    if not (args.pid and args.connections and args.size):
        parser.error("uploads need --pid, --connections and --size")

    with open(args.ids) as ids_file:
        ids = [line.strip() for line in ids_file if line.strip()]
    needed = args.connections * (args.rounds if args.fresh else 1)
    if len(ids) < needed:
        sys.exit(f"upload_clients.py: {args.connections} connections need {needed} cache ids, got {len(ids)}")
    # Random bytes, so the server's BLAKE2b and the disk see what real files cost; shared by all.
    payload = os.urandom(args.size)
    loop = asyncio.get_running_loop()
    results = {"ok": 0, "failed": 0}
    peak = [vm_kb(args.pid, "VmRSS")]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(args.pid, peak, stop))
    started = time.monotonic()
    def ids_of(i):
        return ids[i * args.rounds:(i + 1) * args.rounds] if args.fresh else [ids[i]] * args.rounds
    clients = [client(loop, args, ids_of(i), payload, results) for i in range(args.connections)]
    try:
        await asyncio.wait_for(asyncio.gather(*clients), args.timeout)
    except asyncio.TimeoutError:
        results.setdefault("errors", []).append(f"not done within {args.timeout} s")
    seconds = time.monotonic() - started
    stop.set()
    await sampler
    uploads = args.connections * args.rounds
    results.update({
        "uploads": uploads, "seconds": round(seconds, 3),
        "mib_per_s": round(results["ok"] * args.size / 1048576 / seconds, 1),
        "requests_per_s": round(results["ok"] / seconds, 1),
        "peak_rss_kb": peak[0], "hwm_kb": vm_kb(args.pid, "VmHWM"),
    })
    if "errors" in results:
        results["errors"] = sorted(set(results["errors"]))[:5]
    print(json.dumps(results))


asyncio.run(main())
