"""An HTML reference page rendered from an OpenAPI document, with nothing fetched.

FastAPI's own /docs loads Swagger UI from a CDN, which many networks (and this project's
CI) cannot reach: a blank page. The controller and the HTTP backend serve this instead:
every operation, its parameters and its responses, no scripts. Pure: a dict in, text out.
"""

import html
from typing import Any


def render_reference(schema: dict[str, Any]) -> str:
    """A plain HTML page listing every operation, its parameters and its responses."""
    esc = html.escape
    info = schema.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(info.get('title', 'API'))}</title>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;"
        "padding:0 1em}code{background:#f3f3f3;padding:0 .2em}h3{margin-bottom:.2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left;vertical-align:top}</style></head><body>",
        f"<h1>{esc(info.get('title', 'API'))} <small>{esc(info.get('version', ''))}"
        "</small></h1>",
        f"<p>{esc(info.get('summary', '') or info.get('description', ''))}</p>",
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>.</p>",
    ]
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            parts.append(
                f"<h3 id='{esc(op.get('operationId', ''))}'><code>{esc(method.upper())}"
                f" {esc(path)}</code> {esc(op.get('summary', ''))}</h3>"
            )
            parts.append(f"<p>{esc(op.get('description', ''))}</p>")
            params = op.get("parameters", [])
            if params:
                rows = "".join(
                    f"<tr><td><code>{esc(p['name'])}</code></td><td>{esc(p['in'])}</td>"
                    f"<td>{esc(p.get('description', '') or '')}</td></tr>"
                    for p in params
                )
                parts.append(
                    f"<table><tr><th>parameter</th><th>in</th><th></th></tr>{rows}</table>"
                )
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                parts.append(
                    f"<p>Body <code>{esc(media)}</code>: "
                    f"{_schema_name(content.get('schema', {}))}</p>"
                )
            rows = "".join(
                f"<tr><td>{esc(str(status))}</td><td>{esc(resp.get('description', ''))}</td>"
                f"<td>{', '.join(_schema_name(c.get('schema', {})) for c in resp.get('content', {}).values())}</td></tr>"
                for status, resp in op.get("responses", {}).items()
            )
            parts.append(
                f"<table><tr><th>status</th><th>meaning</th><th>body</th></tr>{rows}</table>"
            )
    parts.append("</body></html>")
    return "".join(parts)


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return f"<code>{html.escape(ref.rsplit('/', 1)[-1])}</code>"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_schema_name(s) for s in schema[key])
    return f"<code>{html.escape(str(schema.get('type', 'any')))}</code>"
