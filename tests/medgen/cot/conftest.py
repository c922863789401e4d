"""The local chat-completions server of the evaluation tests, as the teacher."""

from tests.training.conftest import tiny_model  # noqa: F401,E402 (a fixture: a local checkpoint teacher)
from tests.training.evaluation.conftest import chat_server  # noqa: F401 (a fixture)
