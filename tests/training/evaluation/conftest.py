"""Fixtures for the evaluation tests: a small export, a local server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.training.eval_data import API_KEY, TEST_SOURCES, TRAIN_SOURCES, write_eval_export


@pytest.fixture(scope="module")
def eval_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export with the train split (for the majority baseline) and the test split of eval_data."""
    folder = tmp_path_factory.mktemp("eval-export") / "v1"
    return write_eval_export(folder, {"train": TRAIN_SOURCES, "test": TEST_SOURCES})


@dataclass
class ChatServer:
    """What the fake server received, and how it answers. ``reply(body) -> (status, answer text)``."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    reply: Callable[[dict[str, Any]], tuple[int, str]] = lambda body: (
        200,
        "<think>a</think><answer>A</answer>",
    )
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(server_state: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with server_state.lock:
                server_state.requests.append({"path": self.path, **body})
                server_state.headers.append(dict(self.headers))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                # Like OpenAI, echo the key in the error: the client must not print it.
                message = f"Incorrect API key provided: {key}"
                self._send(
                    401,
                    {
                        "error": {
                            "message": message,
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    },
                )
                return
            status, text = server_state.reply(body)
            if status != 200:
                self._send(status, {"error": {"message": text, "type": "server_error"}})
                return
            self._send(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                },
            )

    return Handler


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A chat-completions server on 127.0.0.1 in a thread; ``url`` is its /v1 base URL."""
    state = ChatServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
