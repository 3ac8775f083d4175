"""The model's text rendered as a document: TXT and Markdown as written, PDF (fpdf2),
PPTX (python-pptx) and DOCX (python-docx).

The text is read the way MassGen's ``text_to_file_generation`` asks models to write
it: ``#`` headings, ``-`` / ``*`` bullets (two spaces of indent per level), ``1.``
numbered items, and for slides ``---`` lines between slides, each slide titled by its
first heading. Emphasis markers (``**bold**``, ``__bold__``) are dropped from the
binary formats rather than printed. The libraries are imported on first use, so a
gateway that never renders a document never loads them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Block", "RenderError", "blocks", "render", "slides"]

Kind = Literal["heading", "bullet", "number", "text", "blank"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_NUMBER = re.compile(r"^(\s*)(\d+[.)])\s+(.*)$")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLIDE_BREAK = re.compile(r"^\s*---+\s*$", re.M)
_LATIN1_STANDINS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
    "\u2014": "-", "\u2022": "-", "\u2026": "...", "\u00a0": " ", "\u2192": "->",
})  # fmt: skip
MAX_SLIDES = 200
"""Slides one PPTX may have."""


class RenderError(Exception):
    """The text cannot be rendered in the format (message for the model)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One line of the text, by what it is."""

    kind: Kind
    level: int
    """Heading: 1-6; bullet or numbered item: indent level from 0; else 0."""
    text: str
    mark: str = ""
    """A numbered item's own number (``2.``), for formats that do not count."""


def _plain(text: str) -> str:
    return _CONTROL.sub("", _EMPHASIS.sub(r"\2", text)).strip()


def blocks(content: str) -> list[Block]:
    """The text's lines, classified (emphasis markers and control characters gone)."""
    found: list[Block] = []
    for line in content.splitlines():
        if not line.strip() or _SLIDE_BREAK.match(line):
            found.append(Block("blank", 0, ""))
        elif match := _HEADING.match(line.strip()):
            found.append(Block("heading", len(match[1]), _plain(match[2])))
        elif match := _BULLET.match(line):
            found.append(Block("bullet", len(match[1].expandtabs(2)) // 2, _plain(match[2])))
        elif match := _NUMBER.match(line):
            level = len(match[1].expandtabs(2)) // 2
            found.append(Block("number", level, _plain(match[3]), match[2]))
        else:
            found.append(Block("text", 0, _plain(line)))
    return found


def slides(content: str) -> list[tuple[str, list[Block]]]:
    """``(title, body)`` per slide: slides are separated by ``---`` lines; the title is
    the slide's first heading (else its first line)."""
    found = []
    for part in _SLIDE_BREAK.split(content):
        lines = [b for b in blocks(part) if b.kind != "blank"]
        if not lines:
            continue
        first = next((b for b in lines if b.kind == "heading"), lines[0])
        found.append((first.text, [b for b in lines if b is not first]))
    return found


def _latin1(text: str) -> tuple[str, int]:
    """``text`` in the PDF core fonts' Latin-1 (what has no stand-in becomes ``?``) and
    how many characters were replaced."""
    text = text.translate(_LATIN1_STANDINS)
    kept = text.encode("latin-1", "replace").decode("latin-1")
    return kept, sum(1 for a, b in zip(text, kept, strict=True) if a != b)


def _pdf(content: str) -> tuple[bytes, str]:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    replaced = 0
    for block in blocks(content):
        if block.kind == "blank":
            pdf.ln(3)
            continue
        text, lost = _latin1(block.text)
        replaced += lost
        size, style, indent = 11, "", 0.0
        if block.kind == "heading":
            size, style = {1: 18, 2: 15, 3: 13}.get(block.level, 12), "B"
        elif block.kind in ("bullet", "number"):
            mark = "-" if block.kind == "bullet" else block.mark
            indent, text = 6.0 * (block.level + 1), f"{mark} {text}"
        pdf.set_font("Helvetica", style, size)
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
    note = f"; {replaced} character(s) outside Latin-1 shown as '?'" if replaced else ""
    return bytes(pdf.output()), note


def _pptx(content: str) -> tuple[bytes, str]:
    from pptx import Presentation

    found = slides(content)
    if len(found) > MAX_SLIDES:
        raise RenderError(f"{len(found)} slides are more than the {MAX_SLIDES} allowed")
    deck = Presentation()
    for title, body in found:
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        frame = slide.placeholders[1].text_frame
        for index, block in enumerate(body):
            paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
            paragraph.text = block.text
            paragraph.level = min(block.level + (block.kind == "heading"), 4)
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue(), f"; {len(found)} slide(s)"


def _docx(content: str) -> tuple[bytes, str]:
    from docx import Document

    document = Document()
    for block in blocks(content):
        if block.kind == "heading":
            document.add_heading(block.text, level=block.level)
        elif block.kind in ("bullet", "number"):
            style = "List Bullet" if block.kind == "bullet" else "List Number"
            level = min(block.level, 2)
            document.add_paragraph(block.text, style=style + (f" {level + 1}" if level else ""))
        elif block.kind == "text":
            document.add_paragraph(block.text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue(), ""


def render(fmt: str, content: str) -> tuple[bytes, str]:
    """``(file bytes, note for the model)`` of ``content`` as ``fmt``.

    Raises:
        RenderError: the text does not fit the format (too many slides).
    """
    if fmt in ("txt", "md"):
        return content.encode("utf-8"), ""
    return {"pdf": _pdf, "pptx": _pptx, "docx": _docx}[fmt](content)
