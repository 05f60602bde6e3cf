"""Which servers a run starts itself (devstack.runner.servers): only where nothing answers,
and only on a loopback address; what answers is used as it is."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

from devstack.runner import servers
from devstack.testing.stack import free_port


def test_addresses_and_their_default_ports() -> None:
    assert servers.address("postgresql+psycopg://postgres@127.0.0.1") == ("127.0.0.1", 5432)
    assert servers.address("amqp://guest:guest@localhost/vhost") == ("localhost", 5672)
    assert servers.address("amqp://u:p@127.0.0.1:6000/") == ("127.0.0.1", 6000)


def test_a_server_that_answers_is_used_not_started() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not servers.ours_to_start(f"postgresql://postgres@127.0.0.1:{port}")
    assert servers.ours_to_start(f"postgresql://postgres@127.0.0.1:{free_port()}")


def test_a_remote_address_is_never_ours_to_start() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): nothing answers, and it is not ours to serve.
    assert not servers.ours_to_start("amqp://guest:guest@192.0.2.1:5672/")


def test_our_broker_keeps_clear_of_the_machines_epmd() -> None:
    assert servers.epmd_port(5672) == 4372 != 4369  # 4369: the machine's epmd
    assert servers.epmd_port(2000) == 3300


def test_data_stays_in_the_run_folder_unless_the_user_cannot_reach_it() -> None:
    # Not pytest's tmp_path: pytest makes its folders for root alone.
    top = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        run_folder = top / "run"
        run_folder.mkdir()
        top.chmod(0o755)
        assert servers.data_dir(run_folder, "postgres", None) == run_folder / "postgres"
        assert servers.data_dir(run_folder, "postgres", "postgres") == run_folder / "postgres"
        top.chmod(0o700)  # only its owner may enter now
        elsewhere = servers.data_dir(run_folder, "postgres", "postgres")
        assert elsewhere.parts[:4] == ("/", "var", "tmp", "song-platform")
        assert elsewhere == servers.data_dir(run_folder, "postgres", "postgres")  # stable
        assert servers.data_dir(run_folder, "postgres", None) == run_folder / "postgres"
    finally:
        shutil.rmtree(top)
