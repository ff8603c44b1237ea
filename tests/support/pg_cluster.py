"""A private PostgreSQL cluster a test owns: its own data directory, port and crashes.

The shared server (127.0.0.1:5432) cannot be stopped or rolled back, so a test
that loses commits starts its own cluster with `initdb` and `pg_ctl`. A
snapshot is `pg_basebackup` (a consistent copy of the running cluster, its WAL
streamed alongside: taken without stopping anything); a rollback stops the
cluster with `-m immediate` (a crash: nothing flushed, no shutdown checkpoint),
puts the snapshot in place of the data directory and starts it again, so every
commit made after the snapshot is gone.

PostgreSQL refuses to run as root: under root the binaries run as the
`postgres` system user (`runuser`) in a directory it owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.engine_process import free_port
from tests.support.services import unavailable

DATABASE = "hmt_chaos"
# fsync off: the cluster is crashed by killing its processes, never the machine,
# so the kernel's page cache holds everything written; the disk need not.
SERVER_OPTIONS = ("fsync=off", "full_page_writes=off", "max_connections=100")


def bin_dir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: HMT_TEST_PG_BIN, `pg_config --bindir`, or Debian's."""
    candidates = [os.environ.get("HMT_TEST_PG_BIN", "")]
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        candidates.append(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    candidates += sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    return None


class PgCluster:
    """One cluster under `root`: `data/` live, `snapshot/` the last snapshot taken."""

    def __init__(self, bindir: Path, root: Path, user: str | None) -> None:
        self.bindir, self.root, self.user = bindir, root, user
        self.port = free_port()
        self.data, self.snapshot_dir = root / "data", root / "snapshot"
        self.log = root / "server.log"
        self.rollbacks = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}\n"
                f"server log:\n{self.server_log()}"
            )

    def server_log(self, last: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-last:]
        except FileNotFoundError:
            return ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = [
            f"-c port={self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
        ]
        options += [f"-c {option}" for option in SERVER_OPTIONS]
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE)

    def snapshot(self) -> None:
        """A consistent copy of the running cluster (its WAL streamed with it), no downtime."""
        shutil.rmtree(self.snapshot_dir, ignore_errors=True)
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-D",
            str(self.snapshot_dir),
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )

    def rollback(self) -> None:
        """Crash the cluster (`-m immediate`), put the snapshot in place, start it again."""
        assert self.snapshot_dir.is_dir(), "rollback without a snapshot"
        self.stop("immediate")
        shutil.rmtree(self.data)
        self.snapshot_dir.rename(self.data)
        self.start()
        self.rollbacks += 1


@contextlib.contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """initdb + pg_ctl start on a free port in a temporary directory; stopped and removed after."""
    bindir = bin_dir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        raise AssertionError("unreachable")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            unavailable("running as root and there is no `postgres` user to run PostgreSQL as")
            raise AssertionError("unreachable") from None
    root = Path(tempfile.mkdtemp(prefix="hmt-pg-"))
    if user is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = PgCluster(bindir, root, user)
    try:
        cluster.init()
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        with contextlib.suppress(AssertionError):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
