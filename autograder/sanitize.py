"""Student content made safe to show: in the formgrader, in feedback, in reports, in logs.

Anything a submission holds or its code printed is shown to people only after passing through
here: HTML through nh3's allowlist (no script, no event handlers, no iframes, no ``javascript:`` or
``data:`` URLs, no styles), markdown rendered and then cleaned the same way, outputs reduced to
the MIME types a grader needs (plain text, cleaned HTML, LaTeX, PNG/JPEG with checked base64),
notebook and cell metadata dropped (widget state would render HTML), and control characters
(terminal escapes, NULs, forged line breaks) removed from anything printed or logged.
"""
from __future__ import annotations

import re

import nh3

#: tags a written answer or an HTML output may keep (text formatting, tables, lists, images, math)
TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
        "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "caption", "colgroup",
        "col", "dl", "dt", "dd"}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"},
              "td": {"colspan", "rowspan", "align"}, "th": {"colspan", "rowspan", "align"}, "col": {"span"},
              "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
KEPT_MIME = ("text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean_html(html: str) -> str:
    """An HTML fragment with everything that could run or load something removed."""
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES,
                     clean_content_tags={"script", "style", "svg", "math", "iframe", "object", "embed", "template",
                                         "noscript", "textarea", "select", "frame", "frameset", "applet", "title"},
                     strip_comments=True, link_rel="noopener noreferrer nofollow",
                     url_relative="deny", filter_style_properties=set())


def clean_markdown(source: str) -> str:
    """A markdown answer as sanitized HTML that renders the same (math kept for MathJax).

    The markdown is rendered as nbconvert renders it, then cleaned; the result is one HTML block
    with no blank lines, which markdown renderers pass through unchanged.
    """
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    try:
        html = markdown2html_mistune(source)
    except Exception:  # noqa: BLE001 - unrenderable: show it as text
        html = "<pre>" + nh3.clean_text(source) + "</pre>"
    cleaned = clean_html(html)
    return '<div class="student-answer">\n' + re.sub(r"\n\s*\n", "\n", cleaned).strip() + "\n</div>"


def clean_text(text: str) -> str:
    """Text with control characters removed (newlines and tabs kept)."""
    return _CONTROL.sub("", text)


def one_line(text: str, limit: int = 300) -> str:
    """Text for one log line or table cell: control characters and line breaks removed, cut at ``limit``."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())[:limit]


def clean_output(output: dict) -> dict | None:
    """A notebook output safe to render, or None to drop it."""
    kind = output.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": "stderr" if output.get("name") == "stderr" else "stdout",
                "text": clean_text(str(output.get("text", "")))}
    if kind == "error":
        tb = output.get("traceback") if isinstance(output.get("traceback"), list) else []
        return {"output_type": "error", "ename": one_line(output.get("ename", "Error"), 200),
                "evalue": clean_text(str(output.get("evalue", "")))[:4000],
                "traceback": [clean_text(str(line)) for line in tb][:60]}
    if kind in ("display_data", "execute_result"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        kept = {}
        for mime in KEPT_MIME:
            value = data.get(mime)
            if isinstance(value, list):
                value = "".join(str(v) for v in value)
            if not isinstance(value, str):
                continue
            if mime in ("image/png", "image/jpeg"):
                if _BASE64.match(value):
                    kept[mime] = value
            elif mime == "text/html":
                kept[mime] = clean_html(value)
            elif mime == "text/markdown":
                kept["text/html"] = clean_markdown(value)
            else:
                kept[mime] = clean_text(value)
        if not kept:
            dropped = ", ".join(sorted(str(m) for m in data)[:5])
            kept["text/plain"] = f"[output not shown: {one_line(dropped, 120)}]"
        entry = {"output_type": kind, "data": kept, "metadata": {}}
        if kind == "execute_result":
            entry["execution_count"] = None
        return entry
    return None


def clean_cell(cell, source_meta: dict | None) -> None:
    """A submitted cell made safe in place: its metadata is the source's (or none), markdown and raw
    cells are cleaned, outputs filtered."""
    from nbformat import from_dict

    cell.metadata = from_dict({"nbgrader": dict(source_meta)} if source_meta else {})
    if cell.cell_type == "markdown":
        cell.source = clean_markdown(cell.source)
        cell.pop("attachments", None)
    elif cell.cell_type == "raw":
        cell.cell_type = "markdown"
        cell.source = "<pre>" + nh3.clean_text(cell.source) + "</pre>"
        cell.pop("attachments", None)
    elif cell.cell_type == "code":
        cell.outputs = [from_dict(o) for o in (clean_output(dict(o)) for o in cell.get("outputs", [])) if o is not None]
