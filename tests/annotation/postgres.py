"""A throw-away PostgreSQL for the tests: initdb in a temp dir, a free loopback port, stopped by PID.

Uses Debian's ``postgresql`` package (``.ci/run`` installs it). As root, the server runs as the
``postgres`` system user, which PostgreSQL requires; otherwise as the current user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PASSWORD = "pg-test-secret"


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields ``postgresql://medgen:PASSWORD@127.0.0.1:PORT/medgen``; the server is gone afterwards."""
    initdb, postgres = _bin("initdb"), _bin("postgres")
    if initdb is None or postgres is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="medgen-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    (root / "pw").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root / "pw", "postgres", "postgres")
    subprocess.run(
        _as_server_user(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "medgen",
                "--auth=scram-sha-256",
                f"--pwfile={root / 'pw'}",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    process = subprocess.Popen(
        _as_server_user(
            [
                postgres,
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(root),
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "wb"),  # noqa: SIM115 (closed with the process)
        start_new_session=True,
    )
    url = f"postgresql://medgen:{PASSWORD}@127.0.0.1:{port}/medgen"
    try:
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(
                    dbname="postgres", user="medgen", password=PASSWORD, host="127.0.0.1", port=port
                ) as conn:
                    conn.autocommit = True
                    conn.execute("CREATE DATABASE medgen")
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)  # fast shutdown
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """None for SQLite (the default), or the URL of a throw-away PostgreSQL (the benchmarks' --postgres)."""
    if not postgres:
        yield None
        return
    with postgres_server() as url:
        yield url
