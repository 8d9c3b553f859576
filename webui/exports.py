"""CSV exports of the lists (people, children), read whole before the response (a council's list is
thousands of rows, not millions) and written in pieces, each cell safe to open in a spreadsheet (one
that starts like a formula is written as text)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from flask import Response

from .context import as_download

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_response(filename: str, headings: list[str], rows: list[Iterable]) -> Response:
    """A CSV download of `rows` under `headings`."""

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(headings)
        for row in rows:
            writer.writerow([_cell(value) for value in row])
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(lines(), mimetype="text/csv", headers=as_download(filename))
