"""``/openapi.json`` says what the routes really answer (found wanting by schemathesis)."""

from __future__ import annotations

from typing import Any

import pytest

from patronlink.settings import Settings
from patronlink.web.app import create_app
from patronlink.web.sms_gateway import PARAMETERS


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    # Building the schema touches no database.
    app = create_app(Settings(database_url="sqlite://"), None)  # type: ignore[arg-type]
    return app.openapi()


def test_metrics_are_documented_as_prometheus_text(schema: dict[str, Any]) -> None:
    content = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_sms_callback_documents_its_parameters_and_answers(
    schema: dict[str, Any], method: str
) -> None:
    operation = schema["paths"]["/rest/{agency_id}/smsgateway"][method]
    query = [p["name"] for p in operation["parameters"] if p["in"] == "query"]
    # The spec's six, then Kannel's optional charset and coding of the text (issue 16).
    assert query == [*PARAMETERS, "charset", "coding"]
    responses = operation["responses"]
    assert {"200", "400", "401", "403", "429"} <= set(responses)
    assert "404" not in responses  # an unknown agency answers 401, as a wrong password (issue 13)
    assert all("text/plain" in responses[s]["content"] for s in ("200", "400", "401", "429"))


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/agencies/{agency_id}/patrons", "post"),
        ("/api/v1/agencies/{agency_id}/items", "post"),
        ("/api/v1/agencies/{agency_id}/loans", "post"),
        ("/api/v1/agencies/{agency_id}/reservations", "post"),
        ("/api/v1/agencies/{agency_id}/messages", "post"),
        ("/api/v1/agencies/{agency_id}/messages/retry", "post"),
    ],
)
def test_json_body_routes_document_unreadable_and_large_bodies(
    schema: dict[str, Any], path: str, method: str
) -> None:
    assert {"400", "413"} <= set(schema["paths"][path][method]["responses"])
