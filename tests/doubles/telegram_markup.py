"""Telegram's ``parse_mode`` checks, roughly as the Bot API applies them to message text.

The Telegram double refuses text its formatting mode cannot parse with the description Telegram
gives ("Bad Request: can't parse entities: ..."), so a bot that forgets to escape a reply is
caught in tests, and measures a message's length on the text left once markup is taken out.
:func:`plain_text` returns that text or raises :class:`UnparsableEntities`.
"""

from __future__ import annotations

MARKDOWN_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a"}
    | {"code", "pre", "blockquote", "tg-emoji", "tg-time"}
)
HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
MARKDOWN_V2_NAMES = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
}


class UnparsableEntities(Exception):
    """Text its ``parse_mode`` rejects; ``str()`` is the part after "can't parse entities: "."""


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text a chat shows for ``text`` under ``parse_mode`` (None: as it is)."""
    mode = (parse_mode or "").lower()
    if mode == "markdownv2":
        return _MarkdownV2(text).parse()
    if mode == "html":
        return _html(text)
    if mode == "markdown":
        return text.replace("*", "").replace("_", "").replace("`", "")
    if mode:
        raise UnparsableEntities(f"unsupported parse_mode {parse_mode!r}")
    return text


def utf16_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


class _MarkdownV2:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out: list[str] = []
        self.open: list[tuple[str, int]] = []

    def parse(self) -> str:
        i = 0
        while i < len(self.text):
            i = self._step(i)
        if self.open:
            marker, at = self.open[-1]
            name = MARKDOWN_V2_NAMES[marker]
            raise UnparsableEntities(f"Can't find end of {name} entity at byte offset {at}")
        return "".join(self.out)

    def _step(self, i: int) -> int:
        char = self.text[i]
        if char == "\\":
            return self._escaped(i)
        if char == "`":
            return self._code(i)
        if char == "]" and self.open and self.open[-1][0] == "[":
            return self._link_end(i)
        if char == "[":
            self.open.append(("[", _byte_offset(self.text, i)))
            return i + 1
        if char == ">" and (i == 0 or self.text[i - 1] == "\n"):
            return i + 1
        for marker in ("__", "||", "*", "_", "~"):
            if self.text.startswith(marker, i):
                self._toggle(marker, i)
                return i + len(marker)
        if char in MARKDOWN_V2_RESERVED:
            raise UnparsableEntities(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        self.out.append(char)
        return i + 1

    def _escaped(self, i: int) -> int:
        if i + 1 >= len(self.text) or not 1 <= ord(self.text[i + 1]) <= 126:
            raise UnparsableEntities(
                "Character '\\' is reserved and must be escaped with the preceding '\\'"
            )
        self.out.append(self.text[i + 1])
        return i + 2

    def _toggle(self, marker: str, i: int) -> None:
        if self.open and self.open[-1][0] == marker:
            self.open.pop()
        elif any(open_marker == marker for open_marker, _ in self.open):
            at = next(at for open_marker, at in self.open if open_marker == marker)
            name = MARKDOWN_V2_NAMES[marker]
            raise UnparsableEntities(f"Can't find end of {name} entity at byte offset {at}")
        else:
            self.open.append((marker, _byte_offset(self.text, i)))

    def _code(self, i: int) -> int:
        fence = "```" if self.text.startswith("```", i) else "`"
        j = i + len(fence)
        while j < len(self.text):
            if self.text[j] == "\\" and j + 1 < len(self.text):
                self.out.append(self.text[j + 1])
                j += 2
            elif self.text.startswith(fence, j):
                return j + len(fence)
            else:
                self.out.append(self.text[j])
                j += 1
        name = "Pre" if fence == "```" else "Code"
        at = _byte_offset(self.text, i)
        raise UnparsableEntities(f"Can't find end of {name} entity at byte offset {at}")

    def _link_end(self, i: int) -> int:
        self.open.pop()
        if not self.text.startswith("(", i + 1):
            return i + 1  # [text] alone is plain text in brackets' place
        j = i + 2
        while j < len(self.text):
            if self.text[j] == "\\":
                j += 2
            elif self.text[j] == ")":
                return j + 1
            else:
                j += 1
        at = _byte_offset(self.text, i + 1)
        raise UnparsableEntities(f"Can't find end of a URL at byte offset {at}")


def _html(text: str) -> str:
    out: list[str] = []
    open_tags: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            i = _html_tag(text, i, open_tags)
        elif char == "&":
            end = text.find(";", i)
            name = text[i + 1 : end] if end != -1 else ""
            if name in HTML_ENTITIES:
                out.append(HTML_ENTITIES[name])
                i = end + 1
            elif name.startswith("#") and name[1:].isdigit():
                out.append(chr(int(name[1:])))
                i = end + 1
            else:
                out.append(char)
                i += 1
        else:
            out.append(char)
            i += 1
    if open_tags:
        raise UnparsableEntities(
            f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"'
        )
    return "".join(out)


def _html_tag(text: str, i: int, open_tags: list[str]) -> int:
    end = text.find(">", i)
    at = _byte_offset(text, i)
    if end == -1:
        raise UnparsableEntities(f"Unclosed start tag at byte offset {at}")
    inside = text[i + 1 : end].strip()
    if inside.startswith("/"):
        name = inside[1:].strip().lower()
        if not open_tags or open_tags[-1] != name:
            expected = f'"</{open_tags[-1]}>"' if open_tags else "no end tag"
            raise UnparsableEntities(
                f'Unmatched end tag at byte offset {at}, expected {expected}, found "</{name}>"'
            )
        open_tags.pop()
        return end + 1
    name = inside.split(maxsplit=1)[0].lower() if inside else ""
    if name not in HTML_TAGS:
        raise UnparsableEntities(f'Unsupported start tag "{name}" at byte offset {at}')
    open_tags.append(name)
    return end + 1
