"""Schemathesis against our OpenAPI schema, in process, with the tiny models: no 5xx and no
response that violates the schema. 150 examples per operation give over 1,000 cases in about
30 s; COLRETRIEVE_SCHEMA_CASES changes the number (`pytest -s` prints the case count).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from colretrieve.settings import Settings
from server import create_app
from server.state import load_state

CASES = int(os.environ.get("COLRETRIEVE_SCHEMA_CASES", "150"))
KEY = "schema-key"


@pytest.fixture(scope="module")
def api_schema(server_index, tiny_embedder, tiny_generator, tmp_path_factory):
    settings = Settings(
        index=server_index,
        collections={"other": tmp_path_factory.mktemp("schema") / "other"},
        api_key=KEY,
        device="cpu",
        max_new_tokens=4,
        answer_pages=1,
        answer_max_pixels=20_000,
        max_upload_bytes=200_000,
        max_jobs=1,
    )
    state = load_state(settings, embedder=tiny_embedder, generator=tiny_generator)
    app = create_app(settings, state=state)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    state.close()


def test_api_conforms_to_its_schema(api_schema):
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    calls: dict[str, int] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=CASES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
            response = case.call()
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            assert response.status_code < 500, (case.path, response.status_code, response.text)
            case.validate_response(response, checks=checks)

        check()
    assert len(calls) >= 12, calls
    print(f"schemathesis: {sum(calls.values())} cases over {len(calls)} operations")
