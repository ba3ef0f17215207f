"""docs/reference/http-api.md: the HTTP API as a page to read, made from the checked-in `openapi.yaml`.

The raw document is copied beside the page (docs/reference/openapi.yaml) so the site can link it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from service.docs_reference.markdown import cell, code, page, table

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
_BOUNDS = {"minLength": "at least", "maxLength": "at most", "minimum": "at least", "maximum": "at most"}


def render(document: str) -> str:
    """The HTTP API reference page for the OpenAPI `document` (YAML text)."""
    spec: dict[str, Any] = yaml.safe_load(document)
    operations = [
        (path, method, item[method])
        for path, item in sorted(spec["paths"].items())
        for method in _METHODS
        if method in item
    ]
    overview = table(
        ["method", "path", "summary"],
        (
            [method.upper(), f"[{code(path)}](#{_id(method, path)})", cell(op.get("summary", ""))]
            for path, method, op in operations
        ),
    )
    schemes = spec.get("components", {}).get("securitySchemes", {})
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    users = _users(operations, schemas)
    info = spec["info"]
    return page(
        "HTTP API",
        ["openapi.yaml"],
        f"{info.get('description', '')}\n\nOpenAPI {spec['openapi']}, API version {info['version']}. The raw "
        "document: [openapi.yaml](openapi.yaml); a running service serves it at `/docs/openapi.yaml`, with "
        "interactive documentation at `/docs`.",
        [
            "## Endpoints\n\n" + overview,
            *(_operation(path, method, op, schemes) for path, method, op in operations),
            "## Schemas\n\nThe request and response bodies the endpoints name.",
            *(_schema(name, schema, users.get(name, set())) for name, schema in sorted(schemas.items())),
        ],
    )


def _users(operations: list[tuple[str, str, dict[str, Any]]], schemas: dict[str, Any]) -> dict[str, set[str]]:
    """Schema name → links to the operations and the schemas that name it."""
    users: dict[str, set[str]] = {}
    for path, method, op in operations:
        for name in _refs(op):
            users.setdefault(name, set()).add(f"[{code(f'{method.upper()} {path}')}](#{_id(method, path)})")
    for owner, schema in schemas.items():
        for name in _refs(schema) - {owner}:
            users.setdefault(name, set()).add(f"[{code(owner)}](#schema-{owner})")
    return users


def _refs(node: Any) -> set[str]:
    """The names of the schemas `node` refers to, however deep."""
    if isinstance(node, dict):
        own = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _id(method: str, path: str) -> str:
    return f"{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}"


def _operation(path: str, method: str, op: dict[str, Any], schemes: dict[str, Any]) -> str:
    parts = [f'## `{method.upper()} {path}` {{ id="{_id(method, path)}" }}', f"**{op.get('summary', '')}**"]
    if op.get("description"):
        parts.append(op["description"])
    for requirement in op.get("security", []):
        for name in requirement:
            scheme = schemes.get(name, {})
            kind = " ".join(str(scheme[k]) for k in ("scheme", "bearerFormat") if k in scheme) or name
            parts.append(f"Authentication: `Authorization: {scheme.get('scheme', name).title()} …` ({kind}).")
    if op.get("parameters"):
        rows = (
            [
                code(p["name"]),
                p["in"],
                "yes" if p.get("required") else "no",
                cell(_type(p.get("schema", {}))),
                cell(_notes({**p.get("schema", {}), "description": p.get("description", "")}) or "—"),
            ]
            for p in op["parameters"]
        )
        parts.append("**Parameters**\n\n" + table(["name", "in", "required", "type", "meaning"], rows))
    body = op.get("requestBody")
    if body:
        kinds = "; ".join(
            f"{code(k)}: {_type(v.get('schema', {}))}" for k, v in sorted(body.get("content", {}).items())
        )
        required = "required" if body.get("required") else "optional"
        parts.append(f"**Request body** ({required}): {kinds}. {body.get('description', '')}".rstrip())
    parts.append("**Responses**\n\n" + table(["status", "body", "meaning"], _responses(op.get("responses", {}))))
    headers = _headers(op.get("responses", {}))
    if headers:
        parts.append("**Response headers**\n\n" + table(["header", "on", "meaning"], headers))
    return "\n\n".join(parts)


def _responses(responses: dict[str, Any]) -> list[list[str]]:
    rows = []
    for status, response in sorted(responses.items()):
        content = response.get("content", {})
        body = "<br>".join(f"{code(k)}: {_type(v.get('schema', {}))}" for k, v in sorted(content.items())) or "—"
        rows.append([str(status), body, cell(response.get("description", ""))])
    return rows


def _headers(responses: dict[str, Any]) -> list[list[str]]:
    """One row per header and meaning, with the statuses it comes with (all of them: "all")."""
    on: dict[tuple[str, str, str], list[str]] = {}
    for status, response in sorted(responses.items()):
        for name, header in sorted(response.get("headers", {}).items()):
            key = (name, _type(header.get("schema", {})), header.get("description", ""))
            on.setdefault(key, []).append(str(status))
    return [
        [code(name), "all" if len(statuses) == len(responses) else ", ".join(statuses), cell(f"{kind}. {meaning}")]
        for (name, kind, meaning), statuses in sorted(on.items())
    ]


def _schema(name: str, schema: dict[str, Any], used_by: set[str]) -> str:
    required = set(schema.get("required", []))
    rows = [
        [code(field), cell(_type(spec)), "yes" if field in required else "no", cell(_notes(spec) or "—")]
        for field, spec in sorted(schema.get("properties", {}).items())
    ]
    lines = [f'### `{name}` {{ id="schema-{name}" }}']
    if schema.get("description"):
        lines.append(schema["description"])
    if schema.get("additionalProperties") is False:
        lines.append("Unknown fields are refused.")
    if used_by:
        lines.append("Used by " + ", ".join(sorted(used_by)) + ".")
    if rows:
        lines.append(table(["field", "type", "required", "meaning"], rows))
    return "\n\n".join(lines)


def _type(schema: dict[str, Any]) -> str:  # noqa: PLR0911 - one answer per kind of JSON schema
    """A schema's type in words: "string or null", "array of [`BlockRecord`](#schema-BlockRecord)"."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{code(name)}](#schema-{name})"
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return " or ".join(_type(s) for s in schema[combinator])
    if "const" in schema:
        return code(json.dumps(schema["const"]))
    if "enum" in schema:
        return " or ".join(code(json.dumps(v)) for v in schema["enum"])
    kind = schema.get("type", "any value")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
        values = schema["additionalProperties"]
        return f"object of name → {_type(values)}" if values else "object"
    return str(kind)


def _notes(schema: dict[str, Any]) -> str:
    """A field's description, then its bounds and default."""
    notes = [schema["description"].rstrip(".")] if schema.get("description") else []
    for source in (schema, *schema.get("oneOf", [])):
        for key, words in _BOUNDS.items():
            if key in source:
                unit = "" if key in ("minimum", "maximum") else " character" if source[key] == 1 else " characters"
                notes.append(f"{words} {source[key]}{unit}")
        if "pattern" in source:
            notes.append(f"matching {code(source['pattern'])}")
    if "default" in schema:
        notes.append(f"default {code(json.dumps(schema['default']))}")
    return "; ".join(notes)
