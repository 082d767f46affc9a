"""HTML pages: one self-contained file (plots embedded as PNG data), readable offline."""
from __future__ import annotations

import base64
import html
import json
from io import BytesIO
from pathlib import Path

import pandas as pd

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;line-height:1.45;"
         "color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}"
         "table{border-collapse:collapse;font-size:13px;margin:.4em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
         "text-align:right}th{background:#f4f4f4}img{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}"
         ".headline{font-size:1.05em;background:#eef5fb;border-left:4px solid #0072B2;padding:.5em .8em}"
         ".warning{background:#fdecea;border-left:4px solid #D55E00;padding:.5em .8em;font-weight:600}"
         ".ok{background:#edf7ef;border-left:4px solid #009E73;padding:.5em .8em}dt{font-weight:600}"
         ".wide{overflow-x:auto;max-width:100%}")


def embedded_image(path, alt: str) -> str:
    """An <img> carrying the PNG itself, so the page needs no other file. Shown at the figure's
    size in inches (100 CSS px each), not one CSS px per image pixel: plots saved at 2x resolution
    would otherwise show at twice the size of the text, and plots of different sizes at different
    text sizes."""
    from PIL import Image

    raw = Path(path).read_bytes()
    with Image.open(BytesIO(raw)) as image:
        dpi = float((image.info.get("dpi") or (100.0,))[0]) or 100.0
        width = round(image.size[0] * 100.0 / dpi)
    data = base64.b64encode(raw).decode("ascii")
    return f"<div><img src='data:image/png;base64,{data}' width='{width}' alt='{html.escape(alt)}'></div>"


def table_html(name: str, table: pd.DataFrame) -> str:
    """A titled table; a default RangeIndex is not shown (it means nothing to a reader)."""
    show_index = not isinstance(table.index, pd.RangeIndex)
    # a table wider than the page scrolls in its own box instead of running off the page
    return (f"<h3>{html.escape(name)}</h3><div class='wide'>"
            + table.to_html(float_format=lambda v: f"{v:.4g}", border=0, index=show_index) + "</div>")


def page(out_dir, title: str, body: list[str]) -> Path:
    """Write ``out_dir/report.html`` from ready HTML pieces."""
    text = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>")
    path = Path(out_dir) / "report.html"
    path.write_text(text, encoding="utf-8")
    return path


def write_html(out_dir, title: str, images: list[str], tables: dict[str, pd.DataFrame],
               summary: dict | None = None, notes: list[str] = (), intro: list[str] = (),
               glossary: dict[str, str] | None = None) -> Path:
    """A page of paragraphs, a glossary, tables and the images in ``out_dir`` (embedded)."""
    out_dir = Path(out_dir)
    body = [f"<p>{html.escape(p)}</p>" for p in intro]
    body += [f"<p><em>note:</em> {html.escape(n)}</p>" for n in notes]
    if glossary:
        body.append("<h2>How to read the scores</h2><dl>" + "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in glossary.items()) + "</dl>")
    tables = [table_html(name, table) for name, table in tables.items()]
    body += tables[:1]   # the headline table, then the plots, then the details
    body += [embedded_image(out_dir / img, img) for img in images]
    body += tables[1:]
    if summary is not None:
        body.append("<h2>summary (JSON)</h2><pre>" + html.escape(json.dumps(summary, indent=2)) + "</pre>")
    return page(out_dir, title, body)
