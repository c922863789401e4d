"""A Label Studio login per annotator, each blind to the others' queues (Label Studio Community).

Every annotator, and the adjudicator, gets an organization of their own on the workspace's server,
holding their queue, their login (e-mail ``<name>@medgen.local`` and a generated password) and a
medgen service login that creates and reads that queue. The people are created by
``annotation.ls_admin`` inside Label Studio's Django, so this needs the workspace's own server
(`medgen annotate serve`, SQLite or PostgreSQL). Passwords and tokens live only in
``labelstudio/credentials.json`` (mode 0600); the catalog keeps the non-secret ids that pull uses
to credit each annotation to the person who made it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from annotation.options import check_names
from annotation.server import (
    Account,
    Credentials,
    load_credentials,
    run_admin,
    running_server,
    save_credentials,
    server_env,
)
from annotation.tables import record_accounts
from medgen.errors import MedgenError
from medgen.workspace import Workspace

DOMAIN = "medgen.local"


@dataclass(frozen=True)
class NewLogin:
    """A login made or reset now: shown to the operator once, never logged."""

    name: str
    email: str
    password: str


def _require_own_server(workspace: Workspace) -> Credentials:
    creds = load_credentials(workspace)
    if creds is None or running_server(workspace) is None:
        raise MedgenError(
            "annotator logins are made on the workspace's own Label Studio: start it with "
            "`medgen annotate serve` (with --url, create users in that server's own admin instead)"
        )
    return creds


def _run_admin(workspace: Workspace, creds: Credentials, request: dict[str, object]) -> dict[str, object]:
    info = running_server(workspace)
    assert info is not None
    return run_admin(server_env(workspace, creds, Path(info.document_root)), request)


def ensure_accounts(workspace: Workspace, wanted: dict[str, str]) -> list[NewLogin]:
    """Give each name (-> kind of queue) an account: organization, login, service login.

    Annotator names are checked (``check_names``); the adjudicator's is medgen's own. All in one run of
    Label Studio's Django (a few seconds to start); returns the logins made now.
    """
    creds = _require_own_server(workspace)
    missing = [name for name in wanted if name not in creds.accounts]
    check_names([name for name in missing if wanted[name] == "annotator"], list(creds.accounts))
    if not missing:
        return []
    fresh = {
        name: Account(
            name=name,
            kind=wanted[name],
            email=f"{name}@{DOMAIN}",
            password=secrets.token_urlsafe(12),
            token=secrets.token_hex(20),
            service_email=f"medgen+{name}@{DOMAIN}",
            service_token=secrets.token_hex(20),
            user_id=0,
            org_id=0,
        )
        for name in missing
    }
    request = {
        "action": "ensure",
        "accounts": [
            {**account.model_dump(), "org_title": f"medgen: {name}'s queue"}
            for name, account in fresh.items()
        ],
        "team_orgs": [account.org_id for account in creds.accounts.values()],
    }
    made = _run_admin(workspace, creds, request)
    accounts = dict(creds.accounts)
    for name, account in fresh.items():
        ids = made[name]
        assert isinstance(ids, dict)
        accounts[name] = account.model_copy(update={"user_id": ids["user_id"], "org_id": ids["org_id"]})
    save_credentials(workspace, creds.model_copy(update={"accounts": accounts}))
    _record(workspace, [accounts[name] for name in fresh])
    return [NewLogin(name, account.email, account.password) for name, account in fresh.items()]


def refresh_accounts(workspace: Workspace) -> list[str]:
    """Make again, on the workspace's server, every login or organization of the team it lacks.

    A database restored from an older backup may lack people made since; their logins keep the
    password and token in the credentials file, and a login the server still has keeps its own
    password (its owner may have changed it). Returns the names whose login or organization was made again.
    """
    creds = _require_own_server(workspace)
    if not creds.accounts:
        return []
    request = {
        "action": "ensure",
        "refresh": True,
        "accounts": [
            {**account.model_dump(), "org_title": f"medgen: {name}'s queue"}
            for name, account in creds.accounts.items()
        ],
        "team_orgs": [account.org_id for account in creds.accounts.values()],
    }
    made = _run_admin(workspace, creds, request)
    accounts, remade = dict(creds.accounts), []
    for name, account in creds.accounts.items():
        ids = made[name]
        assert isinstance(ids, dict)
        if (ids["user_id"], ids["org_id"]) != (account.user_id, account.org_id):
            remade.append(name)
            accounts[name] = account.model_copy(update={"user_id": ids["user_id"], "org_id": ids["org_id"]})
    if remade:
        save_credentials(workspace, creds.model_copy(update={"accounts": accounts}))
        _record(workspace, [accounts[name] for name in remade])
    return remade


def _record(workspace: Workspace, accounts: list[Account]) -> None:
    """The non-secret ids of these logins in the catalog, which pull credits annotations by."""
    record_accounts(workspace, [(a.name, a.kind, a.email, a.user_id, a.org_id) for a in accounts])


def reset_password(workspace: Workspace, name: str) -> NewLogin:
    """A new generated password for ``name``'s login (the old one stops working)."""
    creds = _require_own_server(workspace)
    account = creds.accounts.get(name)
    if account is None:
        known = ", ".join(sorted(creds.accounts)) or "none yet"
        raise MedgenError(f"no annotator {name!r} in this workspace (known: {known})")
    password = secrets.token_urlsafe(12)
    _run_admin(workspace, creds, {"action": "set_password", "email": account.email, "password": password})
    accounts = {**creds.accounts, name: account.model_copy(update={"password": password})}
    save_credentials(workspace, creds.model_copy(update={"accounts": accounts}))
    return NewLogin(name, account.email, password)


def list_accounts(workspace: Workspace) -> list[Account]:
    creds = load_credentials(workspace)
    return sorted(creds.accounts.values(), key=lambda a: a.name) if creds else []
