"""Account administration run inside Label Studio's own Django, on the workspace server's database.

Label Studio Community has no API to create organizations or to set a user's password, and it
scopes what a user sees by organization: each annotator (and the adjudicator) gets an organization
of their own holding only their queue, their login, and a medgen service login that creates and
reads that queue. Object-level checks in Label Studio Community only refuse a user whose membership
of an organization was revoked (``projects.mixins.ProjectMixin.has_permission``), so every person
is also recorded as a revoked member of every other team organization: asking for another queue's
task or annotation by id then answers 403, not the data.

medgen's service logins are members of the ``medgen-managers`` group: with the workspace admin (Label
Studio's superuser) they are the only logins ``annotation.ls_roles`` lets change projects.

Run by ``annotation.server.run_admin`` as ``python -m annotation.ls_admin`` with the server's
environment (same database, SQLite or PostgreSQL); reads one JSON request on stdin, writes one JSON
answer on stdout. Imports nothing from medgen but ``annotation.ls_roles``: it runs in Label Studio's
settings.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Any


def _setup() -> None:
    import label_studio

    sys.path.insert(0, os.path.dirname(label_studio.__file__))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio.core.settings.label_studio")
    import django

    django.setup()


def _user(email: str, password: str, token: str, username: str = "", keep_password: bool = False) -> Any:
    """The login ``email`` with ``token``, made when missing; ``keep_password``: an existing one keeps its own."""
    from rest_framework.authtoken.models import Token
    from users.models import User

    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password)
    elif not keep_password:
        user.set_password(password)
    if username:
        user.username = username
    user.save()
    Token.objects.filter(user=user).exclude(key=token).delete()
    Token.objects.get_or_create(user=user, key=token)
    return user


def ensure(
    accounts: list[dict[str, Any]], team_orgs: list[int], refresh: bool = False
) -> dict[str, dict[str, int]]:
    """Create or refresh each account's organization and logins; revoke each person from the other orgs.

    ``refresh``: the accounts exist in the credentials file already (``annotate repair``): make what
    the server lacks, and leave the password of a login it still has (its owner may have changed it).
    """
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.utils import timezone
    from organizations.functions import create_organization
    from organizations.models import Organization, OrganizationMember
    from users.models import User

    from annotation.ls_roles import MANAGERS

    made: dict[str, dict[str, int]] = {}
    managers, _ = Group.objects.get_or_create(name=MANAGERS)
    with transaction.atomic():
        for account in accounts:
            service = _user(account["service_email"], secrets.token_urlsafe(24), account["service_token"])
            service.groups.add(managers)
            org = Organization.objects.filter(id=account.get("org_id") or -1).first()
            if org is None:
                org = Organization.objects.filter(title=account["org_title"], created_by=service).first()
            if org is None:
                org = create_organization(title=account["org_title"], created_by=service)
            org.add_user(service)
            service.active_organization = org
            service.save(update_fields=["active_organization"])
            person = _user(
                account["email"],
                account["password"],
                account["token"],
                account["name"],
                keep_password=refresh,
            )
            person.groups.remove(managers)  # a person labels; only medgen's own logins manage
            org.add_user(person)
            OrganizationMember.objects.filter(user=person, organization=org).update(deleted_at=None)
            person.active_organization = org
            person.save(update_fields=["active_organization"])
            made[account["name"]] = {"user_id": person.id, "org_id": org.id}
        orgs = set(team_orgs) | {ids["org_id"] for ids in made.values()}
        people = User.objects.filter(active_organization_id__in=orgs).exclude(email__startswith="medgen+")
        for person in people:
            for org_id in orgs - {person.active_organization_id}:
                member, _ = OrganizationMember.objects.get_or_create(user=person, organization_id=org_id)
                if member.deleted_at is None:
                    member.deleted_at = timezone.now()
                    member.save(update_fields=["deleted_at"])
    return made


def upgrade(managers: list[str], storages: list[list[str]]) -> dict[str, int]:
    """Ready data made by a medgen without roles: service logins join the managers group, and storages
    that pointed at the image store's old folder point at its new one (``served/images``)."""
    from django.contrib.auth.models import Group
    from django.db import transaction
    from io_storages.localfiles.models import LocalFilesImportStorage
    from users.models import User

    from annotation.ls_roles import MANAGERS

    moved = 0
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=MANAGERS)
        for user in User.objects.filter(email__in=managers):
            user.groups.add(group)
        for old, new in storages:
            moved += LocalFilesImportStorage.objects.filter(path=old).update(path=new)
    return {"managers": len(managers), "storages_moved": moved}


def set_password(email: str, password: str) -> dict[str, int]:
    from users.models import User

    user = User.objects.filter(email=email).first()
    if user is None:
        raise SystemExit(f"no Label Studio user {email}")
    user.set_password(password)
    user.save()
    return {"user_id": user.id}


def main() -> None:
    request = json.load(sys.stdin)
    _setup()
    if request["action"] == "ensure":
        answer: Any = ensure(request["accounts"], request.get("team_orgs", []), request.get("refresh", False))
    elif request["action"] == "upgrade":
        answer = upgrade(request["managers"], request["storages"])
    elif request["action"] == "set_password":
        answer = set_password(request["email"], request["password"])
    else:
        raise SystemExit(f"unknown action {request['action']!r}")
    sys.stdout.write("\n" + json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
