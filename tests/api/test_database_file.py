"""A SQLite database file removed or replaced under a running service is noticed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.poll import eventually
from support.server import live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.live

CALM = {"loop_lag_warn": 5.0, "loop_lag_fail": 10.0}


def file_check(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["checks"]["database:file"][0])


async def test_a_removed_database_directory_fails_readiness(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    settings = make_settings(database_url=f"sqlite:///{folder}/cotiza.db", **CALM)
    async with live_service(settings) as live, live.http() as http:
        assert (await http.get("/readyz")).status_code == 200
        before = file_check((await http.get("/health/detailed")).json())
        assert before["status"] == "pass"
        shutil.rmtree(folder)

        async def refused() -> bool:
            return (await http.get("/readyz")).status_code == 503

        await eventually(refused, timeout=20, message="/readyz failing")
        detailed = (await http.get("/health/detailed")).json()
        check = file_check(detailed)
        assert check["status"] == "fail" and check["affects"] == "readiness"
        assert "removed" in check["output"] and str(folder) in check["output"]
        assert detailed["status"] != "healthy"


async def test_a_replaced_database_file_fails_readiness(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "cotiza.db"
    settings = make_settings(database_url=f"sqlite:///{path}", **CALM)
    async with live_service(settings) as live, live.http() as http:
        assert file_check((await http.get("/health/detailed")).json())["status"] == "pass"
        copy = tmp_path / "copy.db"
        shutil.copyfile(path, copy)
        copy.replace(path)  # same name, another file (a restore from backup, say)

        async def refused() -> bool:
            return (await http.get("/readyz")).status_code == 503

        await eventually(refused, timeout=20, message="/readyz failing")
        check = file_check((await http.get("/health/detailed")).json())
        assert check["status"] == "fail" and "replaced" in check["output"]


@pytest.mark.postgres
async def test_postgresql_has_no_file_check_to_fail(
    make_settings: Callable[..., Settings], pg_url: str
) -> None:
    settings = make_settings(database_url=pg_url, **CALM)
    async with live_service(settings) as live, live.http() as http:
        body = (await http.get("/health/detailed")).json()
        assert file_check(body)["status"] == "pass"
