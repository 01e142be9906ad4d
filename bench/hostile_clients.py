#!/usr/bin/python3
"""Hostile HTTP clients for bench/hostile_clients.sh, against 127.0.0.1 only, bounded in count
and time. Two attacks, each printing one JSON line of what it saw:

  slowloris PORT CONNECTIONS SECONDS INTERVAL
      CONNECTIONS clients each start a request head and then send one more header byte every
      INTERVAL seconds, never finishing it. Meanwhile a probe sends a normal GET /hello on a new
      connection every 0.25 s; reports the probes' worst latency and their statuses, and when the
      server cut the attackers (seconds after their first byte).

  pipeline PORT CONNECTIONS BYTES SECONDS
      CONNECTIONS clients each send BYTES of pipelined GET /hello and never read; they stay
      connected for SECONDS, then close.
"""
import json
import resource
import selectors
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def raise_descriptor_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def connect(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex((HOST, port))
    return sock


probe_times = []


def probe(port, results, stop):
    """Normal requests during the attack: (seconds taken, status or the failure)."""
    while not stop.is_set():
        started = time.monotonic()
        status = "no answer"
        try:
            with socket.create_connection((HOST, port), timeout=30) as sock:
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                answer = b""
                while b"\r\n" not in answer:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
                if answer.startswith(b"HTTP/1.1 "):
                    status = answer[9:12].decode()
                elif not answer:
                    status = "closed"
        except (ConnectionError, socket.timeout) as error:
            status = type(error).__name__
        results.append((time.monotonic() - started, status))
        probe_times.append(started)
        stop.wait(0.25)


def slowloris(port, connections, seconds, interval):
    raise_descriptor_limit(connections + 64)
    selector = selectors.DefaultSelector()
    first_byte = {}
    cut_after = []  # attackers answered 408: seconds from their first byte
    refused = 0     # answered 503 at max_connections
    dropped = 0     # closed or reset without an answer (evicted while idle, or a 503 lost to a reset)
    began = time.monotonic()
    for _ in range(connections):
        sock = connect(port)
        selector.register(sock, selectors.EVENT_READ)
        first_byte[sock] = None
    probes = []
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(port, probes, stop))
    prober.start()
    head = b"GET /hello HTTP/1.1\r\nHost: bench\r\nX-Slow: "
    next_send = 0.0
    deadline = began + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        trickle = now >= next_send
        if trickle:
            next_send = now + interval
        for sock, since in first_byte.items():
            if since is not None and not trickle:
                continue
            try:
                sock.send(b"a" if since is not None else head)
                if since is None:
                    first_byte[sock] = now
            except OSError:
                pass  # not connected yet, or closed: the read side sees the close
        if not first_byte:  # every attacker is gone: the probe goes on until the deadline
            time.sleep(0.1)
            continue
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 503"):
                refused += 1
            elif data.startswith(b"HTTP/1.1 408") and first_byte[sock] is not None:
                cut_after.append(time.monotonic() - first_byte[sock])
            else:
                dropped += 1
            selector.unregister(sock)
            sock.close()
            del first_byte[sock]
    stop.set()
    prober.join()
    for sock in first_byte:
        sock.close()
    statuses = {}
    for _, status in probes:
        statuses[status] = statuses.get(status, 0) + 1
    # When the probes were served again: the first 200 after the last refusal.
    recovered = None
    for index, (_, status) in enumerate(probes):
        if status != "200":
            recovered = None
        elif recovered is None:
            recovered = index
    cut_after.sort()
    print(json.dumps({
        "attackers": connections,
        "refused_503": refused,
        "dropped_without_answer": dropped,
        "cut_408": len(cut_after),
        "cut_408_after_s": {"min": round(cut_after[0], 1), "max": round(cut_after[-1], 1)} if cut_after else None,
        "still_open_at_end": len(first_byte),
        "probes": len(probes),
        "probe_statuses": statuses,
        "probe_max_latency_s": round(max((t for t, _ in probes), default=0), 3),
        "probes_200_from_s": round(probe_times[recovered] - began, 1) if recovered is not None else None,
    }))


def pipeline(port, connections, size, seconds):
    raise_descriptor_limit(connections + 64)
    request = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"
    batch = request * (size // len(request))
    socks = []
    unsent = {}
    for _ in range(connections):
        sock = connect(port)
        socks.append(sock)
        unsent[sock] = memoryview(batch)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in list(unsent):
            try:
                sent = sock.send(unsent[sock])
                unsent[sock] = unsent[sock][sent:]
                if not unsent[sock]:
                    del unsent[sock]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                del unsent[sock]
        time.sleep(0.05)
    for sock in socks:
        sock.close()
    print(json.dumps({"clients": connections, "requests_each": size // len(request),
                      "clients_that_could_not_send_all": len(unsent)}))


def main():
    mode = sys.argv[1]
    if mode == "slowloris":
        slowloris(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif mode == "pipeline":
        pipeline(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
