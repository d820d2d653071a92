"""Report pages: the blocks a page is made of (text, tables, figures, run records in sections),
rendered to Markdown and to one self-contained HTML file, and how a model is named on them.

The report (`report.py`) and the leaderboard (`leaderboard.py`) both build pages; the report also
embeds a leaderboard, so the page pieces sit here, below both.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from toolbench.foundation.tables import markdown_table

FLOOR_WORDS = ("random", "untrained", "floor")
NUMERIC = re.compile(r"^([-+−]?\d[\d,.]*( ?(%|×|s|min \d+ s))?( \(\d+/\d+\))?|-)$")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]

    def numeric(self) -> list[bool]:
        """Columns to right-align: every cell a number (with unit or count), and not the first."""
        return [i > 0 and all(NUMERIC.match(row[i]) for row in self.rows) for i in range(len(self.headers))]


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


@dataclass
class Record:
    label: str
    tables: list[tuple[str, Table]]
    raw: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figure | Record] = field(default_factory=list)


def model_label(model: str) -> str:
    """`hf:runs/demo/models/target` → `target`; `replay:x/gold.jsonl` → `gold`."""
    where = model.split(":", 1)[-1].rstrip("/")
    path = Path(where)
    return (path.stem if path.suffix in (".jsonl", ".json") else path.name) or model


def is_floor(model: str) -> bool:
    """The untrained model every trained one must beat; recognised by its name (the demo's is
    `models/random`)."""
    return any(word in model_label(model).lower() for word in FLOOR_WORDS)


def md_table(table: Table) -> str:
    return markdown_table(table.headers, table.rows, ["right" if r else "left" for r in table.numeric()])


def render_markdown(title: str, meta: str, sections: list[Section]) -> str:
    parts = [f"# {title}", meta]
    for section in sections:
        parts.append(f"## {section.title}")
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Table):
                parts.append(md_table(block))
            elif isinstance(block, Figure):
                parts.append(f"![{block.caption}](report/{block.name}.png)\n\n*{block.caption}*")
            else:
                inner = [f"**{name}**\n\n{md_table(table)}" for name, table in block.tables]
                parts.append(
                    f"<details><summary>{html.escape(block.label)}</summary>\n\n"
                    + "\n\n".join(inner)
                    + f"\n\n```json\n{block.raw}\n```\n\n</details>"
                )
    return "\n\n".join(parts) + "\n"


CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:13px}
details{margin:.4em 0;border:1px solid #e4e4e4;padding:.3em .6em}summary{cursor:pointer}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:12px}.meta{color:#666}code{background:#f2f2f2}"""


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    right = table.numeric()
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' * r}>{html.escape(c)}</td>" for r, c in zip(right, row, strict=True))
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(title: str, meta: str, sections: list[Section]) -> str:
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f'<h1>{html.escape(title)}</h1><p class="meta">{_inline(meta)}</p>',
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(f"<p>{_inline(block)}</p>")
            elif isinstance(block, Table):
                parts.append(_html_table(block))
            elif isinstance(block, Figure):
                data = base64.b64encode(block.png).decode()
                caption = html.escape(block.caption)
                parts.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
            else:
                inner = "".join(f"<h4>{name}</h4>{_html_table(table)}" for name, table in block.tables)
                parts.append(
                    f"<details><summary>{html.escape(block.label)}</summary>{inner}"
                    f"<h4>raw record</h4><pre>{html.escape(block.raw)}</pre></details>"
                )
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
