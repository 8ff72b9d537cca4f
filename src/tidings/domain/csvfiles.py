"""Reading uploaded CSV files: encoding and delimiter detection, line numbers.

Shared by the customer and order imports, which differ only in their columns.
"""

from __future__ import annotations

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


class BrokenCsv(InvalidInput):
    """The file stops being valid CSV at ``line``; the lines before it were read."""

    def __init__(self, message: str, *, line: int) -> None:
        self.line = line
        super().__init__(message, field="file")


@dataclass(frozen=True, kw_only=True)
class CsvText:
    """A decoded CSV file; iterate :meth:`records` for its non-blank lines."""

    text: str
    encoding: str
    delimiter: str

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """``(line, cells)`` for each non-blank record, cells stripped; ``line`` is
        the physical line the record starts on (quoted fields may span lines).
        Raises :class:`BrokenCsv` where the CSV cannot be read further."""
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
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
    """Decode ``data`` and settle its delimiter.

    ``encoding`` defaults to detection (see :func:`_decode`). ``delimiter``
    defaults to detection among ``, ; TAB |``. ``what`` names the file's rows
    in messages ("customers", "orders"). Raises :class:`InvalidInput` for an
    undecodable, binary or empty file, or a delimiter of more than one character.
    """
    text, encoding = _decode(data, encoding)
    if "\x00" in text:
        raise InvalidInput(
            "The file is not a CSV text file (it contains NUL bytes); save it as CSV.",
            field="file",
        )
    if not text.strip():
        raise InvalidInput(f"The file is empty; it needs a header line and {what}.", field="file")
    if delimiter is None:
        delimiter = _sniff_delimiter(text)
    elif len(delimiter) != 1:
        raise InvalidInput("The delimiter must be a single character.", field="delimiter")
    return CsvText(text=text, encoding=encoding, delimiter=delimiter)


#: Western European Windows, what a spreadsheet on such a machine saves as "CSV".
WESTERN = "cp1252"


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    """The text of ``data`` and the encoding it was read with.

    The stated ``encoding`` wins. Else: a byte-order mark; else strict UTF-8;
    else the most plausible decoding ``charset_normalizer`` finds (cp1251,
    cp1250, Shift JIS, ...), where :data:`WESTERN` (cp1252) wins among the
    decodings it finds equally plausible. On a line or two it finds cp1252,
    cp1250 and others equally plausible and ranks them arbitrarily, so "Müller"
    or "Peña" came out wrong; a longer file of another language is told apart.
    """
    if encoding is None:
        for bom, name in _BOMS:
            if data.startswith(bom):
                encoding = name
                break
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except LookupError as exc:
            raise InvalidInput(f"Unknown encoding {encoding!r}.", field="encoding") from exc
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"The file is not valid {encoding} (byte {exc.start}); "
                "state the right encoding or save it as UTF-8.",
                field="encoding",
            ) from exc
        return text.removeprefix("\ufeff"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
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
        return data.decode(WESTERN), WESTERN
    return str(matches[0]), matches[0].encoding


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
