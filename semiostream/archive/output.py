"""Assemble the final tables from the work folder's chunks (at the end of every run, resumed or not).

The windows table goes to ``--out`` and the inputs table beside it (``results.parquet`` ->
``results.videos.parquet``; ``results.csv`` -> ``results.videos.csv``), each written to a temporary file
and moved into place, so a reader never sees half a table. Rows are sorted: inputs by ``input_id``, windows
by ``(input_id, window)``. Only the inputs of the current command line are written; chunks of inputs no
longer listed stay in the work folder but not in the output.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from semiostream.core.errors import UserError
from semiostream.core.files import atomic_write

from .schema import INPUT_COLUMNS, WINDOW_COLUMNS, Column, arrow_schema, column_names

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
ROW_GROUP = 65536


def output_format(out: str | os.PathLike) -> str:
    """``"parquet"`` or ``"csv"`` from ``--out``'s suffix (UserError otherwise)."""
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise UserError(f"--out {out}: use a .parquet or .csv file name (the suffix chooses the format)")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("writing Parquet needs pyarrow (pip install pyarrow), or use --out results.csv") from None
    return fmt


def inputs_path(out: str | os.PathLike) -> Path:
    """The inputs table beside ``out``: ``results.parquet`` -> ``results.videos.parquet``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.videos{out.suffix}")


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else str(v)  # repr: shortest text that reads back exactly


def _write_csv(path: Path, columns: tuple[Column, ...], batches: Iterable[dict[str, list]]) -> int:
    names = column_names(columns)
    n = 0

    def write(f) -> None:
        nonlocal n
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(text)
        w.writerow(names)
        for cols in batches:
            for row in zip(*(cols[c] for c in names), strict=True):
                w.writerow([_csv_cell(v) for v in row])
                n += 1
        text.flush()
        text.detach()

    atomic_write(path, write)
    return n


def _write_parquet(path: Path, columns: tuple[Column, ...], batches: Iterable[dict[str, list]],
                   metadata: dict[str, str]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns, metadata)
    n = 0

    def write(f) -> None:
        nonlocal n
        with pq.ParquetWriter(f, schema) as w:
            for cols in batches:
                table = pa.Table.from_pydict({c.name: cols[c.name] for c in columns}, schema=schema)
                if table.num_rows:
                    w.write_table(table, row_group_size=ROW_GROUP)
                    n += table.num_rows
    atomic_write(path, write)
    return n


def _grouped(chunks: Iterable[dict[str, list]], names: list[str]) -> Iterator[dict[str, list]]:
    """Merge per-input column dicts into batches of about :data:`ROW_GROUP` rows."""
    acc: dict[str, list] = {c: [] for c in names}
    size = 0
    for cols in chunks:
        for c in names:
            acc[c].extend(cols[c])
        size += len(cols[names[0]])
        if size >= ROW_GROUP:
            yield acc
            acc, size = {c: [] for c in names}, 0
    yield acc


def write_tables(out: str | os.PathLike, inputs: list[tuple[dict[str, Any], Any]],
                 read_windows, metadata: dict[str, str] | None = None) -> tuple[int, int]:
    """Write both tables.

    Args:
        out: the windows table's path (``.parquet``/``.pq``/``.csv``).
        inputs: ``(input_row, handle)`` per input, in any order; ``read_windows(handle)`` returns that input's
            window columns (None handle = no windows). Read one input at a time, so memory stays bounded.
        metadata: key/value strings stored in the Parquet schema (bundle id ...).

    Returns:
        ``(window rows, input rows)`` written.
    """
    fmt = output_format(out)
    out = Path(out)
    order = sorted(inputs, key=lambda t: t[0]["input_id"])
    wnames = column_names(WINDOW_COLUMNS)

    def window_batches() -> Iterator[dict[str, list]]:
        def per_input() -> Iterator[dict[str, list]]:
            for _, handle in order:
                if handle is not None:
                    cols = read_windows(handle)
                    idx = sorted(range(len(cols["window"])), key=cols["window"].__getitem__)
                    yield {c: [cols[c][i] for i in idx] for c in wnames}
        yield from _grouped(per_input(), wnames)

    rows = [r for r, _ in order]
    input_cols = {c: [r[c] for r in rows] for c in column_names(INPUT_COLUMNS)}
    if fmt == "csv":
        nw = _write_csv(out, WINDOW_COLUMNS, window_batches())
        _write_csv(inputs_path(out), INPUT_COLUMNS, [input_cols])
    else:
        nw = _write_parquet(out, WINDOW_COLUMNS, window_batches(), metadata or {})
        _write_parquet(inputs_path(out), INPUT_COLUMNS, [input_cols], metadata or {})
    return nw, len(rows)


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a table written by :func:`write_tables` (CSV cells typed back by the schema; for tests/tools)."""
    path = Path(path)
    columns = WINDOW_COLUMNS if not path.stem.endswith(".videos") else INPUT_COLUMNS
    if path.suffix.lower() == ".csv":
        conv = {"string": str, "int64": int, "float64": float, "bool": lambda v: v == "True"}
        types = {c.name: conv[c.type] for c in columns}
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: None if v == "" else types[k](v) for k, v in rec.items()} for rec in csv.DictReader(f)]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
