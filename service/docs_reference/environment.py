"""docs/reference/environment.md: every environment variable livetoken reads, from the registries beside the code
that reads them (`VARIABLES` in service/config/environment.py and service/tracing/environment.py)."""

from __future__ import annotations

from service.config import environment as config_environment
from service.docs_reference.configuration import SOURCE as MODEL_SOURCE
from service.docs_reference.configuration import field_docstrings
from service.docs_reference.markdown import anchor, cell, name, page, table
from service.tracing import environment as tracing_environment


def render() -> str:
    """The environment reference page."""
    own = sorted(v for v in config_environment.VARIABLES if v[0].startswith("LIVETOKEN_"))
    egress = sorted(v for v in config_environment.VARIABLES if not v[0].startswith("LIVETOKEN_"))
    secret_env = field_docstrings(MODEL_SOURCE.read_text(encoding="utf-8"))["IssuerConfig", "hs256_secret_env"]
    own.append(
        (
            "(the name in `hs256_secret_env`)",
            f"Each `[[issuers]]` entry's `hs256_secret_env` names a variable of your choice. {secret_env}",
        )
    )
    return page(
        "Environment variables",
        ["service/config/environment.py", "service/tracing/environment.py"],
        "Structure lives in the TOML file ([Configuration](configuration.md)); secrets and endpoints come from the "
        "environment. Each is checked at start-up (`serve`, `check-config`), and a bad value stops the process "
        "with one line naming the variable. A secret can come from a file instead: `NAME_FILE` names the file "
        "(for `LIVETOKEN_GEMINI_API_KEY`, `LIVETOKEN_REDIS_URL` and the `hs256_secret_env` variables; not both).",
        [
            "## livetoken's own\n\n" + _table(own),
            "## Egress proxy\n\nRead once at start-up; the lower-case form wins over the upper-case one, as curl "
            "and Python's urllib read them.\n\n" + _table(egress),
            "## OpenTelemetry\n\nTracing is off unless one of the variables marked *turns tracing on* is set (and "
            "the `livetoken[otel]` extra is installed). The OpenTelemetry SDK reads its other variables itself "
            "(`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `…_COMPRESSION`, `…_CERTIFICATE`, `OTEL_BSP_*`).\n\n"
            + _table(sorted(tracing_environment.VARIABLES)),
        ],
    )


def _table(variables: list[tuple[str, str]]) -> str:
    rows = []
    for variable, meaning in variables:
        shown = anchor(variable) + name(variable) if variable.isidentifier() else cell(variable)
        rows.append([shown, cell(meaning)])
    return table(["variable", "meaning"], rows)
