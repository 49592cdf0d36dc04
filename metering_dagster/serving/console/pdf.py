"""A small PDF writer for statements: text in the standard Helvetica fonts and filled rectangles, on A4 pages.

Enough for a statement (lines of text, a table, a bar chart) without a PDF library. Text is written in
Latin-1 (WinAnsi); a character outside it is written `?`, never dropped silently.
"""

from __future__ import annotations

A4 = (595.28, 841.89)  # points


def _escape(text: str) -> str:
    encoded = text.encode("latin-1", "replace").decode("latin-1")
    return encoded.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").replace("\r", " ").replace("\n", " ")


class Pdf:
    def __init__(self) -> None:
        self.pages: list[list[str]] = []
        self.new_page()

    def new_page(self) -> None:
        self.pages.append([])

    def text(self, x: float, y: float, text: str, size: float = 10, *, bold: bool = False, right: bool = False) -> None:
        """Text with its baseline at (x, y) from the top left; `right`: x is where the text ends (approximately)."""
        if right:
            x -= len(text) * size * 0.5
        font = "F2" if bold else "F1"
        top = A4[1] - y
        self.pages[-1].append(f"BT /{font} {size:.1f} Tf {x:.2f} {top:.2f} Td ({_escape(text)}) Tj ET")

    def rect(self, x: float, y: float, width: float, height: float, gray: float = 0.5) -> None:
        """A filled rectangle whose top left is (x, y) from the page's top left."""
        top = A4[1] - y - height
        self.pages[-1].append(f"{gray:.2f} g {x:.2f} {top:.2f} {width:.2f} {height:.2f} re f 0 g")

    def line(self, x1: float, y1: float, x2: float, y2: float) -> None:
        self.pages[-1].append(f"0.5 w {x1:.2f} {A4[1] - y1:.2f} m {x2:.2f} {A4[1] - y2:.2f} l S")

    def output(self) -> bytes:
        objects: list[bytes] = []

        def add(body: bytes) -> int:
            objects.append(body)
            return len(objects)

        catalog = add(b"")  # filled in once the pages are known
        pages_id = add(b"")
        regular = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
        kids = []
        for commands in self.pages:
            stream = "\n".join(commands).encode("latin-1")
            content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            kids.append(
                add(
                    (
                        f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
                        f"/Resources << /Font << /F1 {regular} 0 R /F2 {bold} 0 R >> >> /Contents {content} 0 R >>"
                    ).encode()
                )
            )
        objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
        objects[pages_id - 1] = (
            f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode()
        )
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
        return bytes(out)
