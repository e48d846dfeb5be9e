"""The suite's check that a test server's port is held by the server it started."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.servers import free_port, listener_is_ours

LISTEN = "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])));"
LISTEN += " s.listen(); print('up', flush=True); time.sleep(30)"


def test_a_child_listening_is_ours_anyone_else_is_not() -> None:
    port = free_port()
    assert not listener_is_ours(port)  # nothing listens
    with socket.socket() as own:  # this process is not its own child
        own.bind(("127.0.0.1", port))
        own.listen()
        assert not listener_is_ours(port)
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", LISTEN, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        assert listener_is_ours(port)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert not listener_is_ours(port)  # gone with the child
