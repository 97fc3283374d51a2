"""The published API description says what the service does: schemathesis (every check, bounded deterministic
examples) against /openapi.json of the real service on loopback, without a key and with one."""
from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.serving.process import start_service, stop_service
from core.serving.service import create_app

CONFIG = Path(__file__).with_name("schemathesis.toml")


def schemathesis(url: str, folder: Path, *options: str) -> subprocess.CompletedProcess:
    """The schemathesis command line; its caches go to `folder`, never into the checkout."""
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
               "--checks", "all", "--max-examples", "15", "--generation-deterministic", "--workers", "1",
               "--no-color", "--request-timeout", "60", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=folder)


def test_every_schemathesis_check_passes_on_a_loopback_service_without_a_key(trained_run, tmp_path):
    service = start_service(trained_run, log_url=f"sqlite:///{tmp_path / 'log.sqlite'}", output=tmp_path / "out.txt")
    try:
        run = schemathesis(service.url, tmp_path)
    finally:
        stop_service(service)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_every_schemathesis_check_passes_on_a_service_with_a_key(trained_run, tmp_path):
    key = secrets.token_urlsafe(24)
    service = start_service(trained_run, log_url=f"sqlite:///{tmp_path / 'log.sqlite'}", output=tmp_path / "out.txt",
                            env={"TEST_API_KEY": key}, api_key_env="TEST_API_KEY")
    try:
        run = schemathesis(service.url, tmp_path, "--header", f"X-API-Key: {key}")
    finally:
        stop_service(service)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.fixture(scope="module")
def schemas(trained_run, tmp_path_factory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("schema")
    with TestClient(create_app(trained_run, log_url=f"sqlite:///{folder / 'a.sqlite'}")) as plain, \
            TestClient(create_app(trained_run, log_url=f"sqlite:///{folder / 'b.sqlite'}", api_key="k" * 20)) as keyed:
        return plain.get("/openapi.json").json(), keyed.get("/openapi.json").json()


def test_security_is_declared_only_where_the_service_has_a_key(schemas):
    plain, keyed = schemas
    assert not any("security" in op for path in plain["paths"].values() for op in path.values())
    assert "securitySchemes" not in plain.get("components", {})
    for path in ("/predict", "/feedback", "/model"):
        operation = next(iter(keyed["paths"][path].values()))
        assert operation["security"] and "401" in operation["responses"]
    assert "security" not in keyed["paths"]["/health"]["get"]  # health stays open: monitoring needs no key


def test_every_error_is_a_sentence_in_the_schema_and_required_parts_are_marked(schemas):
    plain, _ = schemas
    components = plain["components"]["schemas"]
    assert components["ErrorBody"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in components  # FastAPI's list of errors is never what the service sends
    for path in plain["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (status, schema)
    assert "404" in plain["paths"]["/feedback"]["post"]["responses"]
    body = components[plain["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
                      ["$ref"].rsplit("/", 1)[-1]]
    assert body["required"] == ["file"] and body["properties"]["file"]["minItems"] == 1
    feedback = components["Feedback"]
    assert set(feedback["required"]) == {"id", "label"}
    assert feedback["properties"]["label"]["enum"] == ["circle", "square", "triangle"]
