"""Schemathesis over the whole OpenAPI document, against the real service in a subprocess.

Bounded (a fixed number of examples per operation, deterministic generation), with and
without a token. Checks: no 5xx, and every response conforms to the document (status
codes, content types, headers, bodies, ``Allow`` on 405); requests that violate the
schema are refused. ``positive_data_acceptance`` is left out: a schema-valid request may
still name a pair that does not exist.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.ports import free_port
from support.process import service_env, wait_healthy
from support.server import live_service

from cotiza.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-schemathesis-314159"
CHECKS = "all"
EXCLUDED = "positive_data_acceptance"
EXAMPLES = "8"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("token", [TOKEN, None], ids=["token", "no-token"])
def test_whole_api_against_its_openapi(tmp_path: Path, token: str | None) -> None:
    port = free_port()
    env = service_env(tmp_path, **({"API_TOKEN": token} if token else {}))
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log_file:
        service = subprocess.Popen(
            [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(port, service)
            argv = [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                CHECKS,
                "--exclude-checks",
                EXCLUDED,
                "--max-examples",
                EXAMPLES,
                "--generation-deterministic",
                "--no-shrink",
                "--workers",
                "1",
                "--request-timeout",
                "20",
            ]
            if token:
                argv += ["--header", f"Authorization: Bearer {token}"]
            run = subprocess.run(
                argv, cwd=tmp_path, capture_output=True, text=True, timeout=200, check=False
            )
        finally:
            service.terminate()
            service.wait(timeout=30)
    report = run.stdout + run.stderr
    assert "Tested: " in report, report[-3000:]
    assert run.returncode == 0, report[-8000:]
    log = log_path.read_text()
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 2000) :][:6000]


BEYOND_INT64 = str(2**63)
HUGE = "598522792484727764811776"


async def test_ids_beyond_int64_are_refused_not_500(make_settings: Callable[..., Settings]) -> None:
    """Found by schemathesis: an id past the database's 64-bit range gave 500."""
    async with live_service(make_settings()) as live, live.http() as http:
        for big in (BEYOND_INT64, HUGE):
            for method, path in (
                ("GET", f"/api/ratios/pairs/{big}"),
                ("PATCH", f"/api/ratios/pairs/{big}"),
                ("DELETE", f"/api/ratios/pairs/{big}"),
                ("GET", f"/api/alerts/rules/{big}"),
                ("DELETE", f"/api/alerts/rules/{big}"),
                ("GET", f"/api/alerts/rules?pair_id={big}"),
                ("GET", f"/api/alerts/history?pair_id={big}"),
                ("GET", f"/api/alerts/history?rule_id={big}"),
            ):
                response = await http.request(method, path, json={} if method == "PATCH" else None)
                assert response.status_code in (404, 422), (method, path, response.text)
                assert "detail" in response.json()
        # The largest id that exists in the database's range is simply not found.
        response = await http.get(f"/api/ratios/pairs/{2**63 - 1}")
        assert response.status_code == 404


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity"])
async def test_history_refuses_non_finite_times(
    make_settings: Callable[..., Settings], value: str
) -> None:
    async with live_service(make_settings()) as live, live.http() as http:
        for name in ("from", "to"):
            params = {"base": "GGAL", "quote": "YPFD", name: value}
            response = await http.get("/api/ratios/history", params=params)
            assert response.status_code == 422, (name, response.text)
        response = await http.get("/api/alerts/history", params={"before": value})
        assert response.status_code == 422, response.text


async def test_document_declares_the_token_and_error_shapes(
    make_settings: Callable[..., Settings],
) -> None:
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        doc = (await http.get("/openapi.json")).json()
        schemes = doc["components"]["securitySchemes"]
        assert schemes["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer",
        }
        assert schemes["apiTokenHeader"]["name"] == "X-API-Token"
        assert doc["paths"]["/admin/drain"]["post"]["security"][0] == {"bearer": []}
        assert "security" not in doc["paths"]["/api/quotes"]["get"]
        detail = doc["components"]["schemas"]["ErrorResponse"]["properties"]["detail"]
        assert {"type": "string"} in detail["anyOf"]
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                if "422" in responses:
                    schema = responses["422"]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, path
                if method in ("post", "patch", "delete"):
                    assert {"401", "403", "413"} <= responses.keys(), (path, method)
        # Every method of a path is named when another one is refused.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = await http.put("/api/ratios/pairs", headers=auth)
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        response = await http.put("/api/ratios/pairs/1", headers=auth)
        assert response.headers["allow"] == "DELETE, GET, PATCH"


async def test_pair_factor_is_bounded(make_settings: Callable[..., Settings]) -> None:
    """Found by schemathesis: a factor of 1e300 overflowed the indicators of every pair."""
    async with live_service(make_settings()) as live, live.http() as http:
        for factor in (1e300, 1e10, 1e-10, 5e-324, 0):
            body = {"base": "GGAL", "quote": "YPFD", "factor": factor}
            response = await http.post("/api/ratios/pairs", json=body)
            assert response.status_code == 422, (factor, response.text)
        response = await http.post(
            "/api/ratios/pairs", json={"base": "GGAL", "quote": "YPFD", "factor": 1e9}
        )
        assert response.status_code == 201, response.text
        pair_id = response.json()["id"]
        response = await http.patch(f"/api/ratios/pairs/{pair_id}", json={"factor": 1e300})
        assert response.status_code == 422
        response = await http.patch(f"/api/ratios/pairs/{pair_id}", json={"factor": 100})
        assert response.status_code == 200
