#!/usr/bin/env python3
# The kernel's share of an upload on this machine, as the floor for Depot's CPU per MiB
# (bench/file_cache.sh): 16 loopback sockets each send ROUNDS bodies of 1 MiB (from another
# process); this one only recv()s them into a buffer of RECV_BYTES (default 256 KiB), write()s
# each body to a temporary file and renames it into place: over the previous file (as the file
# cache's uploads to the same cache ids do), or with --fresh to a new name. Prints its own CPU
# (getrusage) per MiB. No HTTP, no parsing, no hash: what is left is what any server pays the
# kernel. With --splice the bytes never reach user space: splice() moves them socket -> pipe
# (1 MiB) -> file, the zero-copy route; --mmap then maps each finished file, scans it for a
# multipart boundary and copies it once (what a boundary search and a hash over the page cache
# would touch). Not run in CI.
import fcntl
import mmap
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import sys
import tempfile

CONNECTIONS, ROUNDS, SIZE = 16, 20, 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ from Python 3.10 on; spelled out for older ones
BOUNDARY = b"\r\n--floor-boundary-that-never-occurs"


def send_all(port):
    payload = os.urandom(SIZE)
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    for _ in range(ROUNDS):
        for sock in sockets:
            sock.sendall(payload)
    for sock in sockets:
        sock.close()


def receive_into_buffer(connection, buffer, view, state, temporary):
    """recv() into user space and write() from there: every byte crosses user space twice."""
    received = connection.recv_into(buffer)
    offset = 0
    while offset < received:
        if state[0] is None:
            state[0], state[1] = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 0
        take = min(received - offset, SIZE - state[1])
        os.write(state[0], view[offset:offset + take])
        state[1] += take
        offset += take
        if state[1] == SIZE:
            yield
    return received


def splice_through_pipe(connection, pipe, state, temporary):
    """splice() socket -> pipe -> file: the bytes stay in kernel pages."""
    reader, writer = pipe
    if state[0] is None:
        state[0], state[1] = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 0
    try:
        received = os.splice(connection.fileno(), writer, SIZE - state[1],
                             flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
    except BlockingIOError:
        return -1
    moved = 0
    while moved < received:
        moved += os.splice(reader, state[0], received - moved, flags=os.SPLICE_F_MOVE)
    state[1] += received
    if state[1] == SIZE:
        yield
    return received


def scan_and_copy(path):
    """What the boundary search and the digest would cost over the page cache through mmap."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert mapped.find(BOUNDARY) == -1
        bytes(mapped)


def main():
    fresh, splice, scan = "--fresh" in sys.argv, "--splice" in sys.argv, "--mmap" in sys.argv
    directory = tempfile.mkdtemp(prefix="upload-floor.")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(CONNECTIONS)
    sender = multiprocessing.Process(target=send_all, args=(listener.getsockname()[1],))
    sender.start()
    selector = selectors.DefaultSelector()
    files = {}  # connection index -> [open fd or None, bytes in the current file, files done]
    for index in range(CONNECTIONS):
        connection = listener.accept()[0]
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ, index)
        files[index] = [None, 0, 0]
    pipes = {}
    for index in range(CONNECTIONS) if splice else ():
        pipes[index] = os.pipe()
        fcntl.fcntl(pipes[index][1], F_SETPIPE_SZ, SIZE)
    buffer = bytearray(int(os.environ.get("RECV_BYTES", 256 * 1024)))
    view = memoryview(buffer)
    before = resource.getrusage(resource.RUSAGE_SELF)
    open_connections = CONNECTIONS
    while open_connections:
        for key, _ in selector.select():
            state, temporary = files[key.data], f"{directory}/.upload{key.data}"
            if splice:
                steps = splice_through_pipe(key.fileobj, pipes[key.data], state, temporary)
            else:
                steps = receive_into_buffer(key.fileobj, buffer, view, state, temporary)
            while True:
                try:
                    next(steps)
                except StopIteration as finished:
                    received = finished.value
                    break
                os.close(state[0])
                state[0] = None
                state[2] += 1
                path = f"{directory}/file{key.data}-{state[2] if fresh else 0}"
                os.rename(temporary, path)
                if scan:
                    scan_and_copy(path)
            if received == 0:
                selector.unregister(key.fileobj)
                open_connections -= 1
    after = resource.getrusage(resource.RUSAGE_SELF)
    sender.join()
    shutil.rmtree(directory)
    mib = CONNECTIONS * ROUNDS
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    route = ("splice" + (" + mmap scan" if scan else "")) if splice else "recv + write"
    print(f"{route}, {'fresh names' if fresh else 'replacing files'}: {cpu * 1000 / mib:.2f} ms CPU per MiB "
          f"(user {(after.ru_utime - before.ru_utime) * 1000 / mib:.2f}, "
          f"kernel {(after.ru_stime - before.ru_stime) * 1000 / mib:.2f})")


if __name__ == "__main__":
    main()
