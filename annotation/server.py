"""Start, check and stop the Label Studio server of one workspace.

The server keeps its data in ``<workspace>/labelstudio/data`` (SQLite, the single-user default) or
in a PostgreSQL database (``--database postgresql://...``, for a team), listens on loopback unless
told otherwise (``--host``; behind a reverse proxy, ``--public-url``), and serves the workspace's
images through Label Studio's local-files storage, whose document root is the workspace's
``served/`` folder: the image store and nothing else (never ``labelstudio/``, the catalog, reports or
exports). The admin account, its API token, the annotators' accounts and the database URL are
generated or given once and kept in ``labelstudio/credentials.json`` (mode 0600); they are never
printed in full.

The server runs with ``annotation.ls_settings``: Label Studio's settings plus medgen's role check
(``annotation.ls_roles``), so annotators label their own queue and nothing else.

A new workspace's first start would spend a while (minutes on a busy machine) migrating Label
Studio's database. medgen migrates one database per Label Studio version into a cache folder
(``$MEDGEN_CACHE``, else ``$XDG_CACHE_HOME/medgen`` or ``~/.cache/medgen``) and copies it into each
new workspace. That template holds the schema only: no user, organisation or token, which Label
Studio creates from the workspace's own credentials at its first start.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from annotation.ls_database import advance_counters, check_database, database_settings, redact
from annotation.options import ADMIN_NAME
from annotation.tables import has_queues
from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.workspace import Workspace

HOST = "127.0.0.1"
ADMIN_EMAIL = f"{ADMIN_NAME}@medgen.local"
DATABASE = "label_studio.sqlite3"
# Django's own migrate command in Label Studio's settings: the schema, nothing else.
MIGRATE = (
    "import os, sys, label_studio; sys.path.insert(0, os.path.dirname(label_studio.__file__)); "
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'label_studio.core.settings.label_studio'); "
    "import django; django.setup(); from django.core.management import call_command; "
    "call_command('migrate', '--no-color', verbosity=0)"
)
SERVER_FILE = "server.json"
CREDENTIALS_FILE = "credentials.json"
LOG_FILE = "server.log"
# Environment variables passed through to the server: everything else is left out, because
# Label Studio reads unprefixed variables (PORT, HOST, USERNAME...) into its settings.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
SETTINGS = "annotation.ls_settings"
"""Label Studio's settings plus medgen's role check (``annotation.ls_roles``)."""
ROLES_VERSION = 1
"""Credentials older than this come from a medgen without roles: ``serve`` upgrades the server's data once."""


class Account(BaseModel):
    """One person's Label Studio login in their own organization, and medgen's service login there."""

    name: str = Field(description="The annotator's medgen name (also their Label Studio username).")
    kind: str = Field(description="Kind of the queue: 'annotator' or 'adjudication'.")
    email: str = Field(description="Login e-mail.")
    password: str = Field(description="Generated login password.")
    token: str = Field(description="The person's own API token (simulated annotators use it).")
    service_email: str = Field(description="medgen's account in the same organization.")
    service_token: str = Field(description="API token medgen uses for this organization's projects.")
    user_id: int = Field(description="Label Studio user id of the person.")
    org_id: int = Field(description="Label Studio organization holding only this person's queue.")


class Credentials(BaseModel):
    """The secrets of a workspace's Label Studio (file mode 0600)."""

    username: str = Field(description="Admin e-mail used to log in to the web UI.")
    password: str = Field(description="Admin password (generated).")
    token: str = Field(description="Legacy API token (generated), sent as 'Authorization: Token ...'.")
    database: str | None = Field(
        default=None, description="postgresql:// URL of the server's database; None for SQLite."
    )
    accounts: dict[str, Account] = Field(
        default_factory=dict, description="Team accounts by medgen name (annotators, adjudicator)."
    )
    roles_version: int = Field(
        default=0,
        description="Version of medgen's roles the server's data was prepared for (service logins in the "
        "managers group, storages under served/); 0: made by a medgen without roles.",
    )


class ServerInfo(BaseModel):
    """What ``annotate serve`` started: where, which process, which files it serves."""

    url: str = Field(description="Where medgen reaches the server (loopback when it listens everywhere).")
    pid: int
    port: int
    document_root: str = Field(description="Folder local-files URLs are relative to.")
    started_at: float
    host: str = Field(default=HOST, description="Address the server listens on.")
    public_url: str | None = Field(default=None, description="URL annotators open (behind a reverse proxy).")
    database: str = Field(
        default="sqlite", description="'sqlite', or the PostgreSQL URL without its password."
    )
    roles: bool = Field(
        default=False, description="Started with medgen's role check (False: by a medgen without one)."
    )
    notes: list[str] = Field(
        default_factory=list, exclude=True, description="What starting changed in the server's data."
    )


@dataclass
class Paths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def server(self) -> Path:
        return self.root / SERVER_FILE

    @property
    def credentials(self) -> Path:
        return self.root / CREDENTIALS_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE


def mask(secret: str) -> str:
    """Show a secret the only way medgen prints one: its first four characters."""
    return f"{secret[:4]}…" if secret else "(empty)"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_credentials(workspace: Workspace) -> Credentials | None:
    path = Paths(workspace.labelstudio_dir).credentials
    return Credentials.model_validate_json(path.read_text()) if path.is_file() else None


def save_credentials(workspace: Workspace, creds: Credentials) -> None:
    """Write the credentials file atomically, readable by its owner only."""
    _write_private(Paths(workspace.labelstudio_dir).credentials, creds.model_dump_json(indent=2))


def _credentials(workspace: Workspace) -> Credentials:
    existing = load_credentials(workspace)
    if existing is not None:
        return existing
    creds = Credentials(
        username=ADMIN_EMAIL,
        password=secrets.token_urlsafe(18),
        token=secrets.token_hex(20),
        roles_version=ROLES_VERSION,  # a new server has nothing to upgrade
    )
    save_credentials(workspace, creds)
    return creds


def server_env(
    workspace: Workspace, creds: Credentials, root: Path, public_url: str | None = None
) -> dict[str, str]:
    """The environment Label Studio runs with: the server itself, and medgen's admin commands on its data.

    Only these variables reach Label Studio, because it reads unprefixed ones (PORT, HOST...) into
    its settings.
    """
    env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),  # where `annotation` is importable from
        LABEL_STUDIO_BASE_DATA_DIR=str(Paths(workspace.labelstudio_dir).data),
        LABEL_STUDIO_USERNAME=creds.username,
        LABEL_STUDIO_PASSWORD=creds.password,
        LABEL_STUDIO_USER_TOKEN=creds.token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(root),
        # Accounts are made by medgen (`annotate users`), never by sign-up.
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        # Offline and private: no version check against PyPI, no usage analytics.
        LABEL_STUDIO_LATEST_VERSION_CHECK="false",
        LABEL_STUDIO_COLLECT_ANALYTICS="false",
        # Label Studio reports errors to Sentry by default; nothing of a workspace leaves the machine.
        LABEL_STUDIO_SENTRY_DSN="",
        LABEL_STUDIO_FRONTEND_SENTRY_DSN="",
        PYTHONUNBUFFERED="1",
    )
    if creds.database:
        env.update(database_settings(creds.database))
    if public_url:
        # Behind a reverse proxy: links and redirects use the public URL; the browser's Origin is
        # trusted for CSRF; cookies are HTTPS-only when the public side is HTTPS.
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(public_url))
        env.update(LABEL_STUDIO_HOST=public_url.rstrip("/"), CSRF_TRUSTED_ORIGINS=origin)
        if public_url.startswith("https://"):
            env.update(SESSION_COOKIE_SECURE="1", CSRF_COOKIE_SECURE="1")
    return env


def load_server(workspace: Workspace) -> ServerInfo | None:
    path = Paths(workspace.labelstudio_dir).server
    return ServerInfo.model_validate_json(path.read_text()) if path.is_file() else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running Label Studio (not exited, not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): trust the signal check
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return not cmdline or b"label-studio" in cmdline or b"label_studio" in cmdline


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200 and b"UP" in response.read()
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _executable() -> str:
    local = Path(sys.executable).parent / "label-studio"
    found = str(local) if local.exists() else shutil.which("label-studio")
    if not found:
        raise MedgenError("label-studio is not installed: pip install 'medgen[annotation]'")
    return found


def running_server(workspace: Workspace) -> ServerInfo | None:
    """The workspace's server if its process is alive; a stale record is removed."""
    info = load_server(workspace)
    if info is None:
        return None
    if _alive(info.pid):
        return info
    Paths(workspace.labelstudio_dir).server.unlink(missing_ok=True)
    return None


def cache_dir() -> Path:
    from importlib.metadata import version

    base = os.environ.get("MEDGEN_CACHE") or (
        Path(os.environ["XDG_CACHE_HOME"]) / "medgen" if os.environ.get("XDG_CACHE_HOME") else None
    )
    return Path(base or Path.home() / ".cache" / "medgen") / f"labelstudio-{version('label-studio')}"


def migrated_template(env: dict[str, str]) -> Path | None:
    """A migrated, user-less Label Studio database for this version, built once; None if it cannot be built.

    On None the server migrates its own database as usual: the template only saves time.
    """
    target = cache_dir() / DATABASE
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            build_env = {key: value for key, value in env.items() if not key.startswith("LABEL_STUDIO_USER")}
            build_env.pop("LABEL_STUDIO_PASSWORD", None)
            build_env["LABEL_STUDIO_BASE_DATA_DIR"] = str(scratch)
            subprocess.run(
                [sys.executable, "-c", MIGRATE],
                env=build_env,
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=900,
            )
            os.replace(scratch / DATABASE, target)  # atomic: a concurrent builder's copy is the same schema
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return target


def serve(
    workspace: Workspace,
    port: int | None = None,
    document_root: Path | None = None,
    timeout: float = 180.0,
    host: str = HOST,
    public_url: str | None = None,
    database: str | None = None,
) -> ServerInfo:
    """Start Label Studio for ``workspace`` in the background, with medgen's roles, and wait until it answers.

    Args:
        port: TCP port (default: a free one).
        document_root: folder local-files URLs are relative to (default: the workspace's ``served/``
            folder, the image store); refused when it would expose ``labelstudio/`` or the catalog.
        timeout: seconds to wait for the server (the first start migrates its database: ~30 s).
        host: address to listen on; 127.0.0.1 by default, 0.0.0.0 (or a LAN address) for a team.
        public_url: the URL annotators open when a reverse proxy (HTTPS) stands in front.
        database: a ``postgresql://`` URL; remembered in the credentials file for later starts.
            None keeps the workspace's database (SQLite unless one was given before).

    Returns:
        What was started; ``notes`` says what was done to the server's data first (an upgrade from
        a medgen without roles, id counters moved past the catalog's).
    """
    paths = Paths(workspace.labelstudio_dir)
    current = running_server(workspace)
    if current is not None:
        raise MedgenError(
            f"Label Studio is already running for this workspace at {current.url} (pid {current.pid}): "
            "use it, or stop it with `medgen annotate serve --stop`"
        )
    root = _document_root(workspace, document_root)
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise MedgenError(f"--public-url {public_url} must start with https:// (or http://)")
    creds = _with_database(workspace, _credentials(workspace), database)
    port = port or _free_port()
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{local}:{port}"
    if healthy(url, timeout=0.5):
        raise MedgenError(f"port {port} is already in use by another server: choose another with --port")
    paths.data.mkdir(parents=True, exist_ok=True)
    env = server_env(workspace, creds, root, public_url)
    notes = _prepare_data(workspace, creds, env)
    process = launch(env, host, port, paths.log)
    info = ServerInfo(
        url=url,
        pid=process.pid,
        port=port,
        document_root=str(root),
        started_at=time.time(),
        host=host,
        public_url=public_url,
        database=redact(creds.database) if creds.database else "sqlite",
        roles=True,
        notes=notes,
    )
    atomic_write_text(paths.server, info.model_dump_json(indent=2))
    _wait_until_up(workspace, process, url, creds.token, timeout)
    return info


def _document_root(workspace: Workspace, document_root: Path | None) -> Path:
    """The folder Label Studio may serve files from: the image store, never a secret or the catalog."""
    root = (document_root or workspace.served_dir).resolve()
    for secret in (workspace.labelstudio_dir, workspace.root / "catalog.sqlite"):
        if secret.resolve().is_relative_to(root):
            raise MedgenError(
                f"document root {root} would let Label Studio serve {secret}: leave --document-root out "
                f"(the workspace's {workspace.served_dir.name}/ folder, its images only)"
            )
    return root


def _with_database(workspace: Workspace, creds: Credentials, database: str | None) -> Credentials:
    """The credentials with ``database`` remembered (checked reachable first); the SQLite data is never dropped."""
    if database is not None and database != creds.database:
        if creds.database is None and (Paths(workspace.labelstudio_dir).data / DATABASE).is_file():
            raise MedgenError(
                "this workspace's Label Studio already keeps its data in SQLite; a PostgreSQL database would "
                "start empty: use a new workspace (or move the data with Label Studio's own tools)"
            )
        check_database(database)  # a malformed or unreachable URL is refused before it is remembered
        creds = creds.model_copy(update={"database": database})
        save_credentials(workspace, creds)
    elif creds.database:
        check_database(creds.database)
    return creds


def _prepare_data(workspace: Workspace, creds: Credentials, env: dict[str, str]) -> list[str]:
    """Ready the server's data before it takes a request; returns notes on what was changed.

    A new SQLite database starts from the migrated template. Data made by a medgen without roles is
    upgraded once (service logins join the managers group; storages follow the image store into
    ``served/``). Id counters behind the catalog's (a database restored from an older backup) are
    moved past them, so no new project, task or annotation takes an id the catalog already holds.
    """
    database_file = Paths(workspace.labelstudio_dir).data / DATABASE
    if creds.database is None and not database_file.exists():
        template = migrated_template(env)
        if template is not None:
            shutil.copyfile(template, database_file)
    notes = []
    if creds.roles_version < ROLES_VERSION:
        if creds.accounts or has_queues(workspace):
            run_admin(env, _upgrade_request(workspace, creds))
            notes.append(
                "upgraded the server's data to medgen's roles: annotators now label their own queue and "
                f"nothing else; Label Studio serves only {workspace.served_dir}"
            )
        creds = creds.model_copy(update={"roles_version": ROLES_VERSION})
        save_credentials(workspace, creds)
    return notes + advance_counters(workspace, creds.database or database_file)


def _upgrade_request(workspace: Workspace, creds: Credentials) -> dict[str, object]:
    old, new = workspace.root / "images", workspace.store.root / "images"
    return {
        "action": "upgrade",
        "managers": [account.service_email for account in creds.accounts.values()],
        "storages": [[str(old.resolve()), str(new.resolve())]],
    }


def run_admin(env: dict[str, str], request: dict[str, object]) -> dict[str, object]:
    """Run one ``annotation.ls_admin`` request in Label Studio's Django, on the server's database."""
    result = subprocess.run(
        [sys.executable, "-m", "annotation.ls_admin"],
        input=json.dumps(request),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise MedgenError(f"Label Studio account administration failed: {last[:300]}")
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def launch(env: dict[str, str], host: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start ``label-studio start`` in its own session with ``env``, its output appended to ``log``."""
    command = [_executable(), "start", "--no-browser", "--internal-host", host, "--port", str(port)]
    with open(log, "ab") as handle:
        return subprocess.Popen(
            command,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_until_up(
    workspace: Workspace, process: subprocess.Popen[bytes], url: str, token: str, timeout: float
) -> None:
    paths = Paths(workspace.labelstudio_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            paths.server.unlink(missing_ok=True)
            raise MedgenError(
                f"Label Studio exited with code {process.returncode} while starting: see {paths.log}"
            )
        if healthy(url):
            _check_token(url, token, paths.log)
            return
        time.sleep(0.5)
    stop(workspace)
    raise MedgenError(f"Label Studio did not answer within {timeout:.0f} s: see {paths.log}")


def _check_token(url: str, token: str, log: Path) -> None:
    request = urllib.request.Request(
        f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise MedgenError(
            f"Label Studio started but rejects the workspace's API token (HTTP {error.code}); its data dir was "
            f"created with other credentials: remove labelstudio/data to start afresh (see {log})"
        ) from None


def stop(workspace: Workspace, timeout: float = 20.0) -> bool:
    """Stop the workspace's server by its recorded PID. Returns False when none was running."""
    paths = Paths(workspace.labelstudio_dir)
    info = running_server(workspace)
    if info is None:
        return False
    try:
        os.killpg(info.pid, signal.SIGTERM)  # the server was started in its own session: pgid == pid
    except (ProcessLookupError, PermissionError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(info.pid):
        _reap(info.pid)
        time.sleep(0.2)
    if _alive(info.pid):
        os.killpg(info.pid, signal.SIGKILL)
    _reap(info.pid, wait=5.0)
    paths.server.unlink(missing_ok=True)
    return True


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collect the exit status when the server is our own child (otherwise it stays a zombie)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not our child: its own parent (or init) reaps it
        if done or time.monotonic() >= deadline:
            return
        time.sleep(0.05)
