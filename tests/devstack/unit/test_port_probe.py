"""`make compose-up` calls a port "in use" only when something listens on it (issue "A codebase
the next engineer can carry"): run within a minute of `make down`, it said 8080 was in use
because the closed connections' TIME_WAIT entries refused a bind without SO_REUSEADDR."""

from __future__ import annotations

import socket

from devstack.containers.compose import port_is_free


def test_a_listening_port_is_in_use() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(server.getsockname()[1])


def test_a_port_left_in_time_wait_by_a_closed_server_is_free() -> None:
    """Linux lets a bind pass a TIME_WAIT entry when both sockets set SO_REUSEADDR; servers
    (uvicorn, the engines' port forwarders) set it on their listeners, as this one does."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
    client.close()
    server.close()
    assert port_is_free(port)
