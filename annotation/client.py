"""Connect to Label Studio: the workspace's own server, or any server given by URL + token."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from annotation.server import healthy, load_credentials, running_server
from medgen.errors import MedgenError
from medgen.workspace import Workspace

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"


@dataclass
class Connection:
    """A live Label Studio: its URL, the SDK client and the root its local-files URLs start from."""

    url: str
    client: LabelStudio
    document_root: Path
    token: str = field(repr=False, default="")

    def get_json(self, path: str, **params: Any) -> Any:
        """GET an API path the SDK does not wrap (exports in every format, config validation)."""
        return self._request("GET", path, params=params)

    def post_json(self, path: str, payload: Any) -> Any:
        return self._request("POST", path, json=payload)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        headers = {"Authorization": f"Token {self.token}"}
        try:
            response = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=300, **kwargs)
        except httpx.HTTPError as error:
            raise api_error(f"{method} {path}", error) from None
        if response.status_code >= 400:
            error = ApiStatus(response.status_code, response.text)
            raise api_error(f"{method} {path}", error)
        return response.json() if response.content else None

    def image_url(self, path: Path) -> str:
        """The URL Label Studio serves a workspace file under (local-files storage)."""
        try:
            relative = path.resolve().relative_to(self.document_root)
        except ValueError:
            raise MedgenError(
                f"{path} is outside Label Studio's local-files document root {self.document_root}: "
                "start the server with `medgen annotate serve`, or pass --document-root"
            ) from None
        return f"/data/local-files/?d={quote(relative.as_posix())}"


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

    url = url or os.environ.get(URL_ENV) or None
    if url is None:
        info = running_server(workspace)
        creds = load_credentials(workspace)
        if info is None or creds is None:
            raise MedgenError(
                "no Label Studio is running for this workspace: start one with `medgen annotate serve`, "
                f"or use an existing server with --url and the token in ${TOKEN_ENV}"
            )
        url, token, root = info.url, creds.token, Path(info.document_root)
    else:
        url = url.rstrip("/")
        token = os.environ.get(TOKEN_ENV, "")
        if not token:
            raise MedgenError(
                f"set ${TOKEN_ENV} to the API token of {url} (Account & Settings in its web UI)"
            )
        root = (document_root or workspace.root).resolve()
    if not healthy(url, timeout=5):
        raise MedgenError(f"Label Studio at {url} does not answer: is it running? (`medgen annotate serve`)")
    client = LabelStudio(base_url=url, api_key=token, timeout=120)
    return Connection(url=url, client=client, document_root=root, token=token)


def api_error(action: str, error: Exception) -> MedgenError:
    """A one-line error for a failed Label Studio call (server down, refused token, bad request)."""
    status = getattr(error, "status_code", None)
    body: Any = getattr(error, "body", None)
    if status in (401, 403):
        return MedgenError(
            f"{action}: Label Studio refused the API token (HTTP {status}): check ${TOKEN_ENV}"
        )
    if status is not None:
        return MedgenError(f"{action}: Label Studio answered HTTP {status}: {str(body)[:300]}")
    return MedgenError(
        f"{action}: Label Studio is unreachable ({type(error).__name__}); restart it "
        "(`medgen annotate serve`) and rerun the same command: finished work is kept"
    )
