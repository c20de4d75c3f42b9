"""/openapi.json is a valid OpenAPI 3.1 document that schema-driven tools can use: every `$ref` resolves, every
request body is declared, every error status a route answers is documented, and /docs renders it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from server_process import RunningServer


@pytest.fixture(scope="module")
def document(server: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_ref_resolves_under_components_schemas(document: dict[str, Any]) -> None:
    found = set(refs(document))
    assert len(found) > 20
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        resolve(document, ref)
    assert "$defs" not in str(document)


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/completions", "CompletionRequest"),
        ("/v1/chat/completions", "ChatCompletionRequest"),
        ("/tokenize", "TokenizeRequest"),
        ("/detokenize", "DetokenizeRequest"),
    ],
)
def test_request_bodies_and_their_errors_are_declared(document: dict[str, Any], path: str, model: str) -> None:
    operation = document["paths"][path]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    for status in ("400", "401", "408", "413", "503"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    assert "422" not in operation["responses"]  # bad input is a 400 in OpenAI's shape


def test_the_schemas_carry_the_limits_the_server_enforces(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert chat["messages"]["maxItems"] == 2048 and chat["messages"]["minItems"] == 1
    sampling = schemas["CompletionRequest"]["properties"]
    assert sampling["stop"]["anyOf"][1]["maxItems"] == 16
    bias = sampling["logit_bias"]["anyOf"][0]
    assert bias["maxProperties"] == 1024 and bias["additionalProperties"] is False
    assert sampling["max_tokens"]["anyOf"][0]["maximum"] == 2**31 - 1


def test_streaming_answers_are_documented_as_server_sent_events(document: dict[str, Any]) -> None:
    ok = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "text/event-stream"}
    event = ok["text/event-stream"]["schema"]
    assert {"const": "[DONE]"} in event["properties"]["data"]["anyOf"]


def test_swagger_ui_is_served(server: RunningServer) -> None:
    response = httpx.get(f"{server.base_url}/docs", timeout=30)
    assert response.status_code == 200 and "/openapi.json" in response.text
