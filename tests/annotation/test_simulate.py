"""Simulated annotators' requests: a transient server error is tried again, a refusal is not."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from label_studio_sdk.core.api_error import ApiError

import annotation.simulate as simulate
from medgen.errors import MedgenError


def _connection(failures: list[int]):
    calls = []

    def create(task_id, **answer):
        calls.append(task_id)
        if failures:
            raise ApiError(status_code=failures.pop(0), body="database is locked")

    return SimpleNamespace(client=SimpleNamespace(annotations=SimpleNamespace(create=create))), calls


def test_send_tries_again_after_a_500_and_gives_up_after_the_last_try(monkeypatch):
    sleeps = []
    monkeypatch.setattr(simulate.time, "sleep", sleeps.append)
    connection, calls = _connection([500, 503])
    simulate.send(connection, 7, {"result": []}, "ann1")
    assert calls == [7, 7, 7] and sleeps == [0.5, 1.0]

    connection, calls = _connection([500] * (simulate.RETRIES + 1))
    with pytest.raises(MedgenError, match="HTTP 500"):
        simulate.send(connection, 8, {"result": []}, "ann1")
    assert len(calls) == simulate.RETRIES + 1


def test_send_does_not_retry_a_refusal(monkeypatch):
    monkeypatch.setattr(simulate.time, "sleep", lambda s: pytest.fail("slept on a 400"))
    connection, calls = _connection([400])
    with pytest.raises(MedgenError, match="HTTP 400"):
        simulate.send(connection, 9, {"result": []}, "ann2")
    assert calls == [9]
