"""Roles on the Label Studio that medgen starts: people label their own queue and nothing else.

Label Studio Community lets every member of an organization do everything in it (delete the project,
replace its labeling config, add a storage over any folder of the document root...). medgen gives
each person an organization holding only their queue, and this middleware, loaded into the server's
own process by ``annotation.ls_settings``, limits what they may ask of it:

- **managers** (Label Studio's superuser, the workspace admin; and medgen's service logins, members of
  the ``medgen-managers`` group) may do everything, as before;
- **everyone else** (annotators, the adjudicator, reviewers, and any login medgen does not know) may
  only do what labeling needs, listed in ``LABELING``: open their project, its tasks and the labeling
  page with its images and instructions, create / update / delete their own annotations and drafts,
  skip, read the pre-fills, and change their own password (``/medgen/password/``);
- **nobody logged in** reaches only the login page, static assets and the health check.

It is an allowlist of Django URL names, so an endpoint that a later Label Studio adds answers 403
to annotators until medgen lists it. The request's identities are its session's user and its API
token's (legacy ``Token`` or personal access token): a request is a manager's only when every
identity it carries is one. Writes to an annotation, a draft or a Data Manager tab are checked to
be the person's own, and an annotation's body may not name another author, task or project.

Imports nothing from medgen: it runs inside Label Studio's Django.
"""

from __future__ import annotations

import functools
import json
from typing import Any

MANAGERS = "medgen-managers"
"""Django group of medgen's service logins: they create, fill and read the queues."""
PASSWORD_PATH = "medgen/password/"

READ = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Unnamed routes of Label Studio's front end: its JavaScript, styles, fonts and service worker.
ASSET_ROUTES = (
    "^static/",
    "^label-studio-frontend/",
    "^react-app/",
    "^dm/",
    "^favicon\\.ico$",
    "^sw\\.js$",
    "^sw-fallback\\.js$",
)

PUBLIC: dict[str, frozenset[str]] = {
    "user-login": READ | {"POST"},
    "logout": READ | {"POST"},
    "main": READ,  # "/": redirects to the projects (or to the login page)
    "health": READ,
    "version": READ,
    "api-version": READ,
    "heidi_tips": READ,  # tips the front end asks for on every page
    "jwt_auth:token_refresh": frozenset(
        {"POST"}
    ),  # a personal access token buys an access token, checked as its user
}
"""URL names anyone may reach, logged in or not."""

LABELING: dict[str, frozenset[str]] = {
    **PUBLIC,
    "projects:project-index": READ,  # the list of their project(s)
    "data_manager:project-data": READ,  # the project's task list and labeling page
    "current-user-whoami": READ,
    "medgen-password": READ | {"POST"},
    "user-account": READ,  # redirected to medgen's password page
    "user-account-anything": READ,
    "projects:api:project-list": READ,
    "projects:api:project-detail": READ,
    "projects:api:project-next": READ,
    "projects:api:label-stream-history": READ,
    "tasks:api:task-list": READ,
    "tasks:api:task-detail": READ,
    "tasks:api:task-annotations": READ | {"POST"},  # submit and skip
    "tasks:api-annotations:annotation-detail": READ | {"PATCH", "PUT", "DELETE"},  # their own only
    "tasks:api:task-drafts": READ | {"POST"},
    "tasks:api:task-annotations-drafts": READ | {"POST"},  # a draft of their own annotation
    "tasks:api-drafts:draft-detail": READ | {"PATCH", "PUT", "DELETE"},  # their own only
    "tasks:api-predictions:prediction-list": READ,  # the pre-fills
    "tasks:api-predictions:prediction-detail": READ,
    "data_manager:api:view-list": READ | {"POST"},  # the task list's tab, made on the first visit
    "data_manager:api:view-detail": READ | {"PATCH", "PUT", "DELETE"},  # their own tab only
    "data_manager:dm-columns": READ,
    "data_manager:dm-project": READ,
    "data_manager:dm-actions": frozenset({"POST"}),  # only "next task" (NEXT_ONLY)
    "labels_manager:api-labels:label_link-list": READ,
    "storages:localfiles_data": READ,  # the task images; Label Studio checks the project
}
"""URL names (and methods) labeling needs: everything an annotator, adjudicator or reviewer may do."""

STAND_INS = ("user-list", "ml:api:ml-list")
"""Lists the Data Manager loads for every page, which a person may not read: they get their own view of
them (only themselves among the users; no ML backends, which only managers could add)."""

DM_ACTIONS = frozenset({"next_task"})
"""Data Manager actions that change nothing: the label stream asks for its next task this way."""
CREDIT_FIELDS = ("completed_by", "updated_by")
"""Fields of a new answer that would credit it to someone else (Label Studio takes its task from the URL)."""
FOREIGN_FIELDS = (*CREDIT_FIELDS, "task", "project")
"""Fields of a changed answer that would credit it to someone else or move it to another task."""


def route_name(match: Any) -> str:
    """The allowlist key of a resolved URL: its namespaced name, or the route of an unnamed asset."""
    if match.url_name:
        return str(match.view_name)
    route = str(match.route)
    return next((prefix for prefix in ASSET_ROUTES if route.startswith(prefix)), route)


def identities(request: Any) -> list[Any]:
    """Every user the request speaks for: the session's, the JWT's, the legacy token's."""
    from django.contrib.auth import get_user
    from rest_framework.authtoken.models import Token

    found = []
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        found.append(user)
    if getattr(request, "is_jwt", False):  # the JWT replaced request.user: the session may hold another
        session = get_user(request)
        if session.is_authenticated:
            found.append(session)
    scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "token" and key.strip():
        token = Token.objects.select_related("user").filter(key=key.strip()).first()
        if token is not None:
            found.append(token.user)
    return found


@functools.lru_cache(maxsize=65536)
def is_manager(user_id: int) -> bool:
    """Label Studio's superuser, or one of medgen's service logins.

    Cached per user for the server's life: a service login joins the group in the transaction that
    makes it (before any request can name it), data made by an earlier medgen is upgraded before the
    server starts, and a person is never made a manager.
    """
    from django.db.models import Q
    from users.models import User

    return User.objects.filter(pk=user_id).filter(Q(is_superuser=True) | Q(groups__name=MANAGERS)).exists()


def refusal(request: Any, name: str, user: Any) -> str | None:
    """Why ``user`` (not a manager) may not make this request, or None when labeling needs it."""
    methods = LABELING.get(name)
    if methods is None or request.method not in methods:
        return f"{request.method} {name or request.path}"
    pk = request.resolver_match.kwargs.get("pk")
    if name == "data_manager:dm-actions" and request.GET.get("id") not in DM_ACTIONS:
        return f"Data Manager action {request.GET.get('id')!r}"
    if name == "tasks:api:task-annotations" and request.method == "POST":
        return _foreign_fields(request, {"completed_by": user.id, "updated_by": user.id}, CREDIT_FIELDS)
    if request.method in READ and name != "tasks:api:task-annotations-drafts":
        return None
    if name == "tasks:api-annotations:annotation-detail":
        return _own_annotation(request, pk, user, body=request.method != "DELETE")
    if name == "tasks:api:task-annotations-drafts":
        return _own_annotation(request, request.resolver_match.kwargs.get("annotation_id"), user, body=False)
    if name == "tasks:api-drafts:draft-detail":
        from tasks.models import AnnotationDraft

        return (
            None
            if AnnotationDraft.objects.filter(pk=pk, user_id=user.id).exists()
            else f"draft {pk}: not yours"
        )
    if name == "data_manager:api:view-detail":
        from data_manager.models import View

        return None if View.objects.filter(pk=pk, user_id=user.id).exists() else f"tab {pk}: not yours"
    return None


def _own_annotation(request: Any, pk: Any, user: Any, body: bool) -> str | None:
    """The annotation is the person's own; a changed one keeps its author, task and project."""
    from tasks.models import Annotation

    found = Annotation.objects.filter(pk=pk).values_list("completed_by_id", "task_id", "project_id").first()
    if found is None or found[0] != user.id:
        return f"annotation {pk}: not yours"
    own = {"completed_by": user.id, "updated_by": user.id, "task": found[1], "project": found[2]}
    return _foreign_fields(request, own) if body else None


def _foreign_fields(request: Any, own: dict[str, Any], keys: tuple[str, ...] = FOREIGN_FIELDS) -> str | None:
    """An annotation body may not credit or move the answer: each of ``FOREIGN_FIELDS`` it names must be
    the person's own value (Label Studio takes a new answer's task and project from the URL)."""
    if not request.body:
        return None
    try:
        body = json.loads(request.body)
    except ValueError:
        return "an annotation body that is not JSON"  # the labeling page sends JSON
    if not isinstance(body, dict):
        return "an annotation body that is not a JSON object"
    for key in keys:
        if key in body and str(body[key]) != str(own[key]):
            return f"an annotation may not set {key} to {body[key]!r}"
    return None


class RoleMiddleware:
    """Refuses (403) every request of a non-manager that labeling does not need; see the module docstring."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> Any:
        from django.http import HttpResponseRedirect

        name = route_name(request.resolver_match)
        people = identities(request)
        if people and all(is_manager(user.id) for user in people):
            return None
        if name in ASSET_ROUTES or (name in PUBLIC and request.method in PUBLIC[name]):
            return None
        if not people:  # not logged in: Label Studio's own answer (login page, 401)
            return _login_required(request)
        if name in ("user-account", "user-account-anything") and request.method in READ:
            return HttpResponseRedirect(f"/{PASSWORD_PATH}")
        if name in STAND_INS and request.method in READ and len(people) == 1:
            return _stand_in(request, name, people[0])
        reasons = [reason for user in people if (reason := refusal(request, name, user))]
        return _forbidden(request, reasons[0]) if reasons else None


def _stand_in(request: Any, name: str, user: Any) -> Any:
    from django.http import JsonResponse
    from rest_framework.request import Request
    from users.serializers import UserSerializer

    asked = Request(request)
    asked.user = user  # the person the stand-in speaks to (a token request has no session user)
    context = {"request": asked}
    found = [UserSerializer(user, context=context).data] if name == "user-list" else []
    return JsonResponse(found, safe=False)


def _login_required(request: Any) -> Any:
    from django.http import HttpResponseRedirect, JsonResponse

    if request.path.startswith("/api/") or request.method not in READ:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    return HttpResponseRedirect(f"/user/login/?next={request.path}")


def _forbidden(request: Any, reason: str) -> Any:
    from django.http import HttpResponseForbidden, JsonResponse

    message = f"medgen: annotators may label their own queue and nothing else ({reason})"
    if request.path.startswith("/api/") or request.path.startswith("/data/"):
        return JsonResponse({"detail": message}, status=403)
    page = (
        "<!doctype html><title>Not allowed</title><main style='font-family:sans-serif;margin:3em'>"
        "<h1>Not allowed</h1><p>This login may label its own queue and nothing else.</p>"
        "<p><a href='/projects/'>Back to your queue</a> · <a href='/medgen/password/'>Change your password</a>"
        "</p></main>"
    )
    return HttpResponseForbidden(page)


def password_change(request: Any) -> Any:
    """Change one's own password (Label Studio Community has no page for it): old password, new one twice."""
    from django.contrib.auth import update_session_auth_hash
    from django.contrib.auth.forms import PasswordChangeForm
    from django.http import HttpResponse, HttpResponseRedirect
    from django.middleware.csrf import get_token
    from django.utils.html import escape

    if not request.user.is_authenticated:
        return HttpResponseRedirect(f"/user/login/?next=/{PASSWORD_PATH}")
    done = request.method == "GET" and request.GET.get("done") == "1"
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        update_session_auth_hash(request, form.user)  # stay logged in here; other sessions end
        return HttpResponseRedirect(f"/{PASSWORD_PATH}?done=1")
    note = "<p role='status'>Your password was changed.</p>" if done else ""
    page = (
        "<!doctype html><meta charset='utf-8'><title>Change your password</title>"
        "<main style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
        f"<h1>Change your password</h1><p>{escape(request.user.email)}</p>{note}"
        f"<form method='post'><input type='hidden' name='csrfmiddlewaretoken' value='{get_token(request)}'>"
        f"{form.as_p()}<button type='submit'>Change password</button></form>"
        "<p><a href='/projects/'>Back to your queue</a></p></main>"
    )
    return HttpResponse(page)


password_change._dont_enforce_csrf_checks = False  # type: ignore[attr-defined]  # Label Studio turns CSRF off for views
