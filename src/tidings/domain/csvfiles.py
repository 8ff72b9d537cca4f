"""Reading uploaded CSV files: encoding and delimiter detection, line numbers.

Shared by the customer and order imports, which differ only in their columns.

Memory stays bounded by the upload itself: the file is never decoded whole.
:func:`read_csv` checks the encoding chunk by chunk (and looks for NUL
characters on the way), and :meth:`CsvText.records` decodes as it reads, one
record at a time, so an importer can handle rows as they come.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import charset_normalizer

from tidings.errors import InvalidInput

DELIMITERS = ",;\t|"
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_SNIFF_LINES = 20
#: Bytes decoded at a time while checking a file's encoding.
_CHUNK = 1 << 20
#: Most line errors an import reports; the rest are only counted.
MAX_ERRORS = 1000


class BrokenCsv(InvalidInput):
    """The file stops being valid CSV at ``line``; the lines before it were read."""

    def __init__(self, message: str, *, line: int) -> None:
        self.line = line
        super().__init__(message, field="file")


@dataclass(frozen=True, kw_only=True)
class CsvText:
    """A CSV file with its encoding settled; iterate :meth:`records` for its
    non-blank lines. ``skip`` bytes at the start (a byte-order mark) are not text."""

    data: bytes
    encoding: str
    delimiter: str
    skip: int = 0

    def lines(self) -> io.TextIOWrapper:
        """The text, decoded as it is read (``newline=""``, as :mod:`csv` wants)."""
        raw = io.BytesIO(self.data)
        raw.seek(self.skip)
        return io.TextIOWrapper(raw, encoding=self.encoding, newline="")

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """``(line, cells)`` for each non-blank record, cells stripped; ``line`` is
        the physical line the record starts on (quoted fields may span lines).
        Raises :class:`BrokenCsv` where the CSV cannot be read further."""
        reader = csv.reader(self.lines(), delimiter=self.delimiter)
        last_line = 0
        try:
            for record in reader:
                line, last_line = last_line + 1, reader.line_num
                cells = [cell.strip() for cell in record]
                if any(cells):
                    yield line, cells
        except csv.Error as exc:
            raise BrokenCsv(f"The file is not valid CSV near line {reader.line_num}: {exc}.",
                            line=last_line + 1) from exc


def read_csv(data: bytes, *, what: str, encoding: str | None = None,
             delimiter: str | None = None) -> CsvText:
    """Settle the encoding and the delimiter of ``data``, without decoding it whole.

    ``encoding`` defaults to detection (see :func:`_encoding`). ``delimiter``
    defaults to detection among ``, ; TAB |``. ``what`` names the file's rows
    in messages ("customers", "orders"). Raises :class:`InvalidInput` for an
    undecodable, binary or empty file, or a delimiter of more than one character.
    """
    encoding, skip = _encoding(data, encoding)
    head = _check_text(data, encoding, skip)
    if not head.strip():
        raise InvalidInput(f"The file is empty; it needs a header line and {what}.", field="file")
    if delimiter is None:
        delimiter = _sniff_delimiter(head)
    elif len(delimiter) != 1:
        raise InvalidInput("The delimiter must be a single character.", field="delimiter")
    return CsvText(data=data, encoding=encoding, delimiter=delimiter, skip=skip)


def _check_text(data: bytes, encoding: str, skip: int) -> str:
    """Decode ``data`` chunk by chunk to prove it is text in ``encoding``;
    returns the start of the text (for sniffing). Raises :class:`InvalidInput`
    for a byte that does not decode, or a NUL character (a binary file)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    head = ""
    for start in range(skip, max(len(data), skip + 1), _CHUNK):
        chunk = data[start:start + _CHUNK]
        try:
            text = decoder.decode(chunk, final=start + _CHUNK >= len(data))
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"The file is not valid {encoding} (byte {start + exc.start}); "
                "state the right encoding or save it as UTF-8.",
                field="encoding",
            ) from exc
        if "\x00" in text:
            raise InvalidInput(
                "The file is not a CSV text file (it contains NUL bytes); save it as CSV.",
                field="file",
            )
        if len(head) < 64 * 1024:
            head += text[: 64 * 1024]
    return head


#: Western European Windows, what a spreadsheet on such a machine saves as "CSV".
WESTERN = "cp1252"


def _encoding(data: bytes, encoding: str | None) -> tuple[str, int]:
    """The encoding to read ``data`` in, and how many bytes of byte-order mark to skip.

    The stated ``encoding`` wins. Else: a byte-order mark; else UTF-8 if the
    whole file decodes as UTF-8; else the most plausible decoding
    ``charset_normalizer`` finds (cp1251, cp1250, Shift JIS, ...), where
    :data:`WESTERN` (cp1252) wins among the decodings it finds equally
    plausible. On a line or two it finds cp1252, cp1250 and others equally
    plausible and ranks them arbitrarily, so "Müller" or "Peña" came out
    wrong; a longer file of another language is told apart.
    """
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError as exc:
            raise InvalidInput(f"Unknown encoding {encoding!r}.", field="encoding") from exc
        skip = 3 if name == "utf-8" and data.startswith(b"\xef\xbb\xbf") else 0
        return encoding, skip
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, 0  # each of these decoders reads its own mark
    try:
        _check_utf8(data)
        return "utf-8", 0
    except UnicodeDecodeError:
        pass
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        raise InvalidInput(
            "The file's encoding could not be recognised; save it as CSV in UTF-8.",
            field="encoding",
        )

    def plausibility(match: charset_normalizer.CharsetMatch) -> tuple[float, float]:
        # Rounded as charset_normalizer reports them: finer differences are noise.
        return round(match.chaos, 3), -round(match.coherence, 3)

    best = min(plausibility(m) for m in matches)
    if any(plausibility(m) == best and WESTERN in m.could_be_from_charset for m in matches):
        return WESTERN, 0
    return matches[0].encoding, 0


def _check_utf8(data: bytes) -> None:
    """Raise ``UnicodeDecodeError`` unless ``data`` is UTF-8, decoding a chunk at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(data), _CHUNK):
        decoder.decode(data[start:start + _CHUNK], final=start + _CHUNK >= len(data))


class ErrorList:
    """Line errors of an import: the first :data:`MAX_ERRORS` kept, all counted."""

    def __init__(self, limit: int = MAX_ERRORS) -> None:
        self.limit = limit
        self.kept: list[tuple[int, str]] = []
        self.count = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append((line, message))

    @property
    def omitted(self) -> int:
        """How many errors were counted but not kept."""
        return self.count - len(self.kept)


def _sniff_delimiter(text: str) -> str:
    """The delimiter the first lines agree on; the header line decides when
    the sniffer cannot, or when its choice does not even occur in the header."""
    lines = text.lstrip("\r\n").splitlines()
    header = lines[0] if lines else ""
    try:
        found = csv.Sniffer().sniff("\n".join(lines[:_SNIFF_LINES]), delimiters=DELIMITERS)
        if found.delimiter in header:
            return found.delimiter
    except csv.Error:
        pass
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
