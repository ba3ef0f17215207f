"""Property-based contract test: schemathesis drives the running service (real Redis, emulator upstream).

Whatever the generated input, no 5xx comes back and every response conforms to openapi.yaml: documented
status, content type, headers and body schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.support.processes import ROOT, ServiceProcess
from tests.support.redis_proc import free_port
from tests.support.service import make_jwt, service_env, write_config

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def running_service(tmp_path_factory: pytest.TempPathFactory, emulator: Any, redis_server: Any) -> Iterator[str]:
    """`livetoken serve` with the test config as a real process."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    config = write_config(tmp, 'subject = [{ rate = 100000, period = "1m", burst = 100000 }]')
    port = free_port()
    proc = ServiceProcess(
        ["serve", "--config", str(config), "--port", str(port)], service_env(emulator, redis_server.url)
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(url + "/healthz")
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def service_schema(running_service: str) -> Any:
    """The checked-in contract, pointed at the running service."""
    schema = schemathesis.openapi.from_path(Path(ROOT / "openapi.yaml"))
    schema.config.update(base_url=running_service)
    return schema


def test_service_conforms_to_its_contract(service_schema: Any) -> None:
    """No generated request, authenticated or not, gets a 5xx or an undocumented answer."""
    headers = {"Authorization": f"Bearer {make_jwt(sub='fuzz', scopes='live:tools')}"}
    operations = [result.ok() for result in service_schema.get_all_operations()]
    assert len(operations) == 9

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
