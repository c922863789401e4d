"""Connect to Label Studio: the workspace's own server, or any server given by URL + token.

Tokens may be legacy tokens or personal access tokens (JWT refresh tokens, the default of new Label
Studio organizations): the SDK exchanges a personal access token for short-lived access tokens and
refreshes them, and medgen's own raw API calls use the SDK's headers, so both kinds work everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from annotation.server import Account, healthy, load_credentials, running_server
from medgen.errors import MedgenError
from medgen.workspace import Workspace

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"
OWN_SERVER = "the workspace's server"


@dataclass
class Connection:
    """A live Label Studio: its URL, the SDK client and the root its local-files URLs start from.

    ``accounts`` holds the team's logins when this is the workspace's own server; ``origin`` says
    how the server was chosen (the workspace's server, --url, or $LABEL_STUDIO_URL).
    """

    url: str
    client: LabelStudio
    document_root: Path | None  # None: the server does not share this disk (images are uploaded)
    token: str = field(repr=False, default="")
    accounts: dict[str, Account] = field(repr=False, default_factory=dict)
    origin: str = OWN_SERVER

    @property
    def own_server(self) -> bool:
        """The workspace's own server: medgen started it, with its roles and the team's logins."""
        return self.origin == OWN_SERVER

    def with_token(self, token: str) -> Connection:
        """The same server, acting as another user (an annotator's own token, or a queue's service login)."""
        from label_studio_sdk import LabelStudio

        client = LabelStudio(base_url=self.url, api_key=token, timeout=120)
        return Connection(self.url, client, self.document_root, token, self.accounts, self.origin)

    def queue(self, name: str) -> Connection:
        """The connection that manages ``name``'s queue: its organization's service login, else this one."""
        account = self.accounts.get(name)
        return self.with_token(account.service_token) if account else self

    def get_json(self, path: str, **params: Any) -> Any:
        """GET an API path the SDK does not wrap (exports in every format, config validation)."""
        return self._request("GET", path, params=params)

    def post_json(self, path: str, payload: Any) -> Any:
        return self._request("POST", path, json=payload)

    def post_files(self, path: str, files: list[tuple[str, tuple[str, bytes, str]]]) -> Any:
        return self._request("POST", path, files=files)

    def patch_json(self, path: str, payload: Any) -> Any:
        return self._request("PATCH", path, json=payload)

    def delete(self, path: str, missing_ok: bool = False) -> Any:
        """DELETE ``path``; ``missing_ok``: a 404 (deleted already) is no error."""
        return self._request("DELETE", path, missing_ok=missing_ok)

    def _request(self, method: str, path: str, missing_ok: bool = False, **kwargs: Any) -> Any:
        import httpx

        try:
            headers = self.client._client_wrapper.get_headers()  # refreshes a personal access token
        except Exception as error:
            raise api_error(f"{method} {path}", error) from None
        try:
            response = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=300, **kwargs)
        except httpx.HTTPError as error:
            raise api_error(f"{method} {path}", error) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            error = ApiStatus(response.status_code, response.text)
            raise api_error(f"{method} {path}", error)
        return response.json() if response.content else None

    def image_url(self, path: Path) -> str:
        """The URL Label Studio serves a workspace file under (local-files storage)."""
        if self.document_root is None:
            raise MedgenError(
                f"{self.url} does not read this disk: its images are uploaded (annotation.images)"
            )
        try:
            relative = path.resolve().relative_to(self.document_root)
        except ValueError:
            raise MedgenError(
                f"{path} is outside Label Studio's local-files document root {self.document_root}: "
                "start the server with `medgen annotate serve`, or pass --document-root"
            ) from None
        return f"/data/local-files/?d={quote(relative.as_posix())}"


class QueueMissing(MedgenError):
    """A queue's project is in the catalog but gone from the server (deleted, or an older database restored)."""

    def __init__(self, annotator: str, project_id: int, url: str):
        super().__init__(
            f"{annotator}'s queue (project {project_id}) is gone from {url}: `medgen annotate repair` makes it "
            "again from the catalog, with the answers already pulled"
        )
        self.annotator = annotator
        self.project_id = project_id


def project_exists(connection: Connection, project_id: int) -> bool:
    """Whether ``connection`` (a queue's service login, or the admin) finds the project on its server."""
    try:
        connection.client.projects.get(project_id)
    except Exception as error:
        if getattr(error, "status_code", None) == 404:
            return False
        raise api_error("checking projects", error) from None
    return True


class ApiStatus(Exception):
    """An HTTP error status from a raw API call (shaped like the SDK's ApiError)."""

    def __init__(self, status_code: int, body: str):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body


def connect(workspace: Workspace, url: str | None = None, document_root: Path | None = None) -> Connection:
    """The workspace's running server, or ``url`` with the token from ``$LABEL_STUDIO_API_KEY``.

    Raises:
        MedgenError: no server is running, it does not answer, or no token is available.
    """
    from label_studio_sdk import LabelStudio

    origin = "--url"
    if url is None and os.environ.get(URL_ENV):
        url, origin = os.environ[URL_ENV], f"${URL_ENV}"
    accounts: dict[str, Account] = {}
    if url is None:  # the workspace's own server
        info = running_server(workspace)
        creds = load_credentials(workspace)
        if info is None or creds is None:
            raise MedgenError(
                "no Label Studio is running for this workspace: start one with `medgen annotate serve`, "
                f"or use an existing server with --url and the token in ${TOKEN_ENV}"
            )
        if not info.roles:
            raise MedgenError(
                f"the workspace's Label Studio (pid {info.pid}) was started by a medgen without roles: it lets "
                "annotators change projects and serves the whole workspace, credentials included; restart it "
                "(`medgen annotate serve --stop`, then `medgen annotate serve`): nothing is lost"
            )
        url, token, root = info.url, creds.token, Path(info.document_root)
        accounts, origin = dict(creds.accounts), OWN_SERVER
    else:
        url = url.rstrip("/")
        token = os.environ.get(TOKEN_ENV, "")
        if not token:
            raise MedgenError(
                f"set ${TOKEN_ENV} to the API token of {url} (Account & Settings in its web UI)"
            )
        # A server elsewhere does not read this disk unless told where it sees the workspace.
        root = document_root.resolve() if document_root else None
    if not healthy(url, timeout=5):
        raise MedgenError(f"Label Studio at {url} does not answer: is it running? (`medgen annotate serve`)")
    client = LabelStudio(base_url=url, api_key=token, timeout=120)
    return Connection(url, client, root, token, accounts, origin)


def api_error(action: str, error: Exception) -> MedgenError:
    """A one-line error for a failed Label Studio call (server down, refused token, bad request)."""
    status = getattr(error, "status_code", None)
    body: Any = getattr(error, "body", None)
    if status in (401, 403):
        return MedgenError(
            f"{action}: Label Studio refused the API token (HTTP {status}): check ${TOKEN_ENV} "
            "(a legacy token or a personal access token from Account & Settings)"
        )
    if status is not None:
        return MedgenError(f"{action}: Label Studio answered HTTP {status}: {str(body)[:300]}")
    return MedgenError(
        f"{action}: Label Studio is unreachable ({type(error).__name__}); restart it "
        "(`medgen annotate serve`) and rerun the same command: finished work is kept"
    )
