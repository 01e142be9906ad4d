#!/usr/bin/env python3
# The file cache's three throughputs through one address (a replica, or the round-robin balancer
# in front of several): CONNECTIONS kept-alive sockets at once, each first POSTs ROUNDS new cache
# ids, then uploads ROUNDS files of SIZE random bytes to its own id, then downloads that file
# ROUNDS times. Prints one JSON object: cache ids per second, upload and download MiB/s (each
# phase timed alone), and the failures.
#
# Used by bench/scale_out.sh. asyncio with non-blocking sockets, as bench/upload_clients.py, so
# that the client takes little of the CPU the servers are measured on.
import argparse
import asyncio
import json
import os
import socket
import time

BOUNDARY = "depotscaleoutboundary51c2"
SLICE = 256 * 1024


async def read_response(loop, sock, buffer):
    """Reads one response, Content-Length framed or chunked: (status, body, rest of the buffer)."""
    async def more(buffer):
        data = await loop.sock_recv(sock, 262144)
        if not data:
            raise ConnectionError("the server closed the connection inside a response")
        return buffer + data

    while b"\r\n\r\n" not in buffer:
        buffer = await more(buffer)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(lines[0].split()[1])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = []
        while True:
            while b"\r\n" not in rest:
                rest = await more(rest)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest = await more(rest)
            body.append(rest[:size])
            rest = rest[size + 2:]
            if size == 0:
                return status, b"".join(body), rest
    length = int(headers.get("content-length", "0"))
    chunks, have = [rest], len(rest)
    while have < length:
        data = await loop.sock_recv(sock, 262144)
        if not data:
            raise ConnectionError("the server closed the connection inside a response")
        chunks.append(data)
        have += len(data)
    body = b"".join(chunks)
    return status, body[:length], body[length:]


class Client:
    def __init__(self, loop, args, number):
        self.loop, self.args, self.number = loop, args, number
        self.sock, self.buffer, self.cache_id = None, b"", None

    async def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        await self.loop.sock_connect(self.sock, ("127.0.0.1", self.args.port))

    async def exchange(self, head, body_parts=()):
        await self.loop.sock_sendall(self.sock, head)
        for part in body_parts:
            await self.loop.sock_sendall(self.sock, part)
        status, body, self.buffer = await read_response(self.loop, self.sock, self.buffer)
        return status, body

    async def new_cache_id(self, round_number):
        body = json.dumps({"bench": f"scale-{os.getpid()}-{time.time_ns()}-{self.number}-{round_number}"}).encode()
        head = (f"POST /v1/cache_id HTTP/1.1\r\nHost: x\r\nAuthorization: {self.args.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        status, answer = await self.exchange(head + body)
        if status == 200:
            self.cache_id = json.loads(answer)["cache_id"]
        return status == 200

    async def upload(self, payload):
        preamble = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n").encode()
        epilogue = f"\r\n--{BOUNDARY}--\r\n".encode()
        head = (f"POST /v1/cache/{self.cache_id} HTTP/1.1\r\nHost: x\r\nAuthorization: {self.args.token}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {len(preamble) + len(payload) + len(epilogue)}\r\n\r\n").encode()
        view = memoryview(payload)
        parts = [view[start:start + SLICE] for start in range(0, len(payload), SLICE)] + [epilogue]
        status, _ = await self.exchange(head + preamble, parts)
        return status == 200

    async def download(self, size):
        head = (f"GET /v1/cache/{self.cache_id} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {self.args.token}\r\n\r\n").encode()
        status, body = await self.exchange(head)
        return status == 200 and len(body) == size


async def phase(clients, rounds, operation):
    """Runs `operation(client, round)` ROUNDS times on every client at once: (ok, failed, seconds)."""
    counts = {"ok": 0, "failed": 0}

    async def run(client):
        for round_number in range(rounds):
            try:
                ok = await operation(client, round_number)
            except (OSError, ConnectionError):
                ok = False
            counts["ok" if ok else "failed"] += 1

    started = time.monotonic()
    await asyncio.gather(*(run(client) for client in clients))
    return counts["ok"], counts["failed"], time.monotonic() - started


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="non_admin_token")
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--size", type=int, default=1048576)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    clients = [Client(loop, args, number) for number in range(args.connections)]
    await asyncio.gather(*(client.connect() for client in clients))
    payload = os.urandom(args.size)
    ids_ok, ids_failed, ids_s = await phase(clients, args.rounds, lambda c, r: c.new_cache_id(r))
    up_ok, up_failed, up_s = await phase(clients, args.rounds, lambda c, r: c.upload(payload))
    down_ok, down_failed, down_s = await phase(clients, args.rounds, lambda c, r: c.download(args.size))
    mib = args.size / 1048576
    print(json.dumps({
        "cache_ids_per_s": round(ids_ok / ids_s, 1),
        "upload_mib_per_s": round(up_ok * mib / up_s, 1),
        "download_mib_per_s": round(down_ok * mib / down_s, 1),
        "failed": ids_failed + up_failed + down_failed,
    }))


asyncio.run(main())
