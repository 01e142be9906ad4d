#!/usr/bin/env python3
# The kernel's share of an upload on this machine, as the floor for Depot's CPU per MiB
# (bench/file_cache.sh): 16 loopback sockets each send ROUNDS bodies of 1 MiB (from another
# process); this one only recv()s them into a 256 KiB buffer, write()s each body to a temporary
# file and renames it into place: over the previous file (as the file cache's uploads to the same
# cache ids do), or with --fresh to a new name. Prints its own CPU (getrusage) per MiB. No HTTP,
# no parsing, no hash: what is left is what any server pays the kernel. Not run in CI.
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import sys
import tempfile

CONNECTIONS, ROUNDS, SIZE = 16, 20, 1 << 20


def send_all(port):
    payload = os.urandom(SIZE)
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    for _ in range(ROUNDS):
        for sock in sockets:
            sock.sendall(payload)
    for sock in sockets:
        sock.close()


def main():
    fresh = "--fresh" in sys.argv
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
    buffer = bytearray(256 * 1024)
    view = memoryview(buffer)
    before = resource.getrusage(resource.RUSAGE_SELF)
    open_connections = CONNECTIONS
    while open_connections:
        for key, _ in selector.select():
            state, temporary = files[key.data], f"{directory}/.upload{key.data}"
            received = key.fileobj.recv_into(buffer)
            if received == 0:
                selector.unregister(key.fileobj)
                open_connections -= 1
                continue
            offset = 0
            while offset < received:
                if state[0] is None:
                    state[0], state[1] = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 0
                take = min(received - offset, SIZE - state[1])
                os.write(state[0], view[offset:offset + take])
                state[1] += take
                offset += take
                if state[1] == SIZE:
                    os.close(state[0])
                    state[0] = None
                    state[2] += 1
                    os.rename(temporary, f"{directory}/file{key.data}-{state[2] if fresh else 0}")
    after = resource.getrusage(resource.RUSAGE_SELF)
    sender.join()
    shutil.rmtree(directory)
    mib = CONNECTIONS * ROUNDS
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{'fresh names' if fresh else 'replacing files'}: {cpu * 1000 / mib:.2f} ms CPU per MiB "
          f"(user {(after.ru_utime - before.ru_utime) * 1000 / mib:.2f}, "
          f"kernel {(after.ru_stime - before.ru_stime) * 1000 / mib:.2f})")


if __name__ == "__main__":
    main()
