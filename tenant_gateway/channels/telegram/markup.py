"""The assistant's Markdown as Telegram HTML (``parse_mode="HTML"``).

Models answer in Markdown; Telegram shows a small set of HTML tags. Fenced code blocks become
``<pre><code class="language-…">``, inline code ``<code>``, ``**bold**``/``__bold__`` ``<b>``,
``*italic*``/``_italic_`` ``<i>``, ``~~strike~~`` ``<s>``, ``[text](https://…)`` links and
``# headings`` bold lines; everything else is escaped (``&``, ``<``, ``>``). Markers that do
not pair up stay as they are. Text Telegram still refuses (markers crossing each other) is
sent again as plain text by the adapter.
"""

from __future__ import annotations

import html
import re

FENCE = re.compile(r"```([\w+-]*)[^\n]*\n(.*?)(?:\n)?```", re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__", re.DOTALL)
ITALIC = re.compile(
    r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)"
)
STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
HOLE = "\x00{}\x00"
HOLES = re.compile("\x00(\\d+)\x00")


def to_html(markdown: str) -> str:
    """``markdown`` rendered for ``parse_mode="HTML"``."""
    kept: list[str] = []

    def keep(rendered: str) -> str:
        kept.append(rendered)
        return HOLE.format(len(kept) - 1)

    def fence(match: re.Match[str]) -> str:
        language, code = match[1], html.escape(match[2], quote=False)
        attribute = f' class="language-{language}"' if language else ""
        return keep(f"<pre><code{attribute}>{code}</code></pre>")

    text = FENCE.sub(fence, markdown.replace("\x00", ""))
    text = INLINE_CODE.sub(lambda m: keep(f"<code>{html.escape(m[1], quote=False)}</code>"), text)
    text = LINK.sub(lambda m: keep(_link(m[1], m[2])), text)
    text = html.escape(text, quote=False)
    text = HEADING.sub(r"<b>\1</b>", text)
    text = BOLD.sub(lambda m: f"<b>{m[1] or m[2]}</b>", text)
    text = ITALIC.sub(lambda m: f"<i>{m[1] or m[2]}</i>", text)
    text = STRIKE.sub(r"<s>\1</s>", text)
    return HOLES.sub(lambda m: kept[int(m[1])], text)


def _link(label: str, url: str) -> str:
    href = html.escape(url, quote=True)
    return f'<a href="{href}">{html.escape(label, quote=False)}</a>'
