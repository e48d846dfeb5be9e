"""Assertions on RFC 9457 problem documents, shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """``response`` is a problem+json of ``status`` whose ``status`` member is that HTTP
    status (RFC 9457), with a stable ``code``; returns the document."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["status"] == response.status_code, body
    assert isinstance(body["code"], str) and body["code"], body
    assert body["type"] == f"urn:tempoflow:problem:{body['code']}", body
    assert isinstance(body["title"], str) and isinstance(body["detail"], str), body
    if code is not None:
        assert body["code"] == code, body
    return body
