"""The local chat-completions server of the evaluation tests, for the endpoint screener."""

from tests.training.evaluation.conftest import chat_server  # noqa: F401 (a fixture)
