"""Daily time series from CSV, and the calendar features a forecaster reads (issue 5).

``read_daily_csv`` reads a long file (``date, series, value`` rows) or a wide file (a date column
and one column per series) into a ``DailyFrame``: one row per day from the first to the last date,
with a missing day or an empty/NA cell kept as NaN so that the loss and the metrics can mask it;
nothing is ever filled in. Every problem in the file is a ``DataError`` naming the file and line.

``calendar_features`` turns dates into the trunk's inputs: day-of-week one-hot, Fourier terms of
the day of the year, an optional holiday flag and optional exogenous columns.
"""

from __future__ import annotations

import csv
import datetime
import difflib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtlshare.data.conll import decode_utf8
from mtlshare.errors import ConfigError, DataError
from mtlshare.tasks.task import name_problem

LAYOUTS = ("long", "wide")
# Cells meaning "no observation", compared after stripping and lower-casing.
MISSING = frozenset({"", "na", "nan"})


@dataclass
class DailyFrame:
    """Daily series on one continuous calendar.

    ``dates`` runs from the first to the last date in the file, one entry per day, no gaps.
    ``values[name]`` (days,) float64 is series ``name``; NaN = no observation (a day absent from
    the file or an empty/NA cell). ``columns[name]`` (days,) float64 is an extra numeric column
    (holiday flag, exogenous feature); NaN on days absent from the file, and on days whose cell
    is empty in a column read with ``blank_ok``: ``blank[name]`` maps each such day's row to
    the file's line, so that a reader that needs the value can name it.
    """

    path: str
    dates: list[datetime.date]
    values: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]
    blank: dict[str, dict[int, int]] = field(default_factory=dict)

    def where(self, column: str, day: int) -> int | None:
        """The file's line of an empty cell of ``column`` on row ``day``, or None (the day is
        absent from the file, or its cell holds a value)."""
        return self.blank.get(column, {}).get(day)

    def index_of(self, day: datetime.date) -> int:
        """Row of ``day`` in every array; ``DataError`` if the file does not span it."""
        if not self.dates or not self.dates[0] <= day <= self.dates[-1]:
            span = f"{self.dates[0]}..{self.dates[-1]}" if self.dates else "no dates"
            raise DataError(f"date {day} is outside the file's range {span}", path=self.path)
        return (day - self.dates[0]).days


# what other tools write for a missing value: a table's class of this name is read as a class,
# with a warning, and a regression cell or a daily value of it is an error saying what is read
# as missing
LOOKS_MISSING = frozenset(
    {
        "null",
        "none",
        "nil",
        "n/a",
        "#n/a",
        "#na",
        "<na>",
        "na",
        "nan",
        "missing",
        "?",
        "-",
        "--",
        ".",
    }
)


def csv_records(path: Path, shown: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` per CSV record, ``line`` being the 1-based file line where the
    record starts. Blank (empty or whitespace-only) lines are skipped but still counted."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path=shown) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=shown) from None
    text = decode_utf8(path, raw)  # a leading byte-order mark is not part of the header
    # strict: an unterminated quote is an error instead of swallowing the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # located at the line where the broken record starts
            raise DataError(f"malformed CSV: {exc}", path=shown, line=previous + 1) from None
        start, previous = previous + 1, reader.line_num
        if row and not (len(row) == 1 and not row[0].strip()):
            yield start, row


def csv_header(path: Path, shown: str) -> tuple[int, list[str], Iterator[tuple[int, list[str]]]]:
    """The header's line and fields, and the records after it (``csv_records``); a file
    without a record is a ``DataError``."""
    records = csv_records(path, shown)
    first = next(records, None)
    if first is None:
        raise DataError("file is empty: expected a header and data rows", path=shown)
    return first[0], first[1], records


def csv_rows(
    records: Iterator[tuple[int, list[str]]], header: list[str], header_line: int, shown: str
) -> list[tuple[int, list[str]]]:
    """Every record after the header, each with as many fields as the header; one of another
    length, or none at all, is a ``DataError`` naming the line."""
    rows = []
    for line, row in records:
        if len(row) != len(header):
            message = f"row has {len(row)} fields but the header has {len(header)}"
            raise DataError(message, path=shown, line=line)
        rows.append((line, row))
    if not rows:
        raise DataError("no data rows after the header", path=shown, line=header_line)
    return rows


def column_positions(
    header: list[str],
    needed: Sequence[str],
    shown: str,
    line: int,
    named_by: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Each needed column's position in ``header``. A column the header lacks is a
    ``DataError`` naming the header, the setting that named the column (``named_by``), a
    column of a near name, or the separator of a file that is not comma-separated."""
    names = [name.strip() for name in header]
    positions: dict[str, int] = {}
    for column in needed:
        hits = [i for i, name in enumerate(names) if name == column]
        if not hits:
            raise DataError(
                _no_column(column, names, (named_by or {}).get(column)), path=shown, line=line
            )
        if len(hits) > 1:
            raise DataError(f"column {column!r} appears {len(hits)} times in header", shown, line)
        positions[column] = hits[0]
    return positions


def missing_feature(column: str, cell: str, categorical: bool = False) -> str:
    """What a feature cell that is empty or marks a missing value is told: features are never
    filled in, so the file must be."""
    fill = "fill the cell or leave the row out"
    if categorical:
        fill += " (a category of its own, such as 'unknown', can stand for a missing value)"
    return f"column {column!r} is empty ({cell!r}): a feature cannot be missing; {fill}"


def _no_column(column: str, names: list[str], named_by: str | None) -> str:
    message = f"no column {column!r} in header {names}"
    if named_by:
        message += f" (named by {named_by})"
    near = difflib.get_close_matches(column, names, n=1, cutoff=0.75)
    separators = [s for s in ";\t|" if len(names) == 1 and s in names[0]]
    if near:
        message += f"; did you mean {near[0]!r}?"
    elif separators:
        message += (
            f"; the file is read as comma-separated, and its header is one field holding "
            f"{separators[0]!r}: write it with commas"
        )
    return message


def daily_keys(data: Mapping[str, Any]) -> dict[str, str]:
    """The config key that names each column a daily source reads, from its ``[data]`` table's
    values (for the line of a column the file lacks)."""
    keys = {data["date_column"]: "data.date_column"}
    if data["layout"] == "wide":
        keys.update(dict.fromkeys(data.get("series") or (), "data.series, of the wide layout"))
    else:
        keys[data["series_column"]] = "data.series_column, of the long layout"
        keys[data["value_column"]] = "data.value_column, of the long layout"
    if data.get("holiday_column"):
        keys[data["holiday_column"]] = "data.holiday_column"
    keys.update(dict.fromkeys(data.get("exogenous") or (), "data.exogenous"))
    return keys


def _parse_date(cell: str, date_format: str, shown: str, line: int) -> datetime.date:
    try:
        return datetime.datetime.strptime(cell.strip(), date_format).date()
    except ValueError:
        message = f"unparsable date {cell!r} (expected format {date_format!r}, data.date_format)"
        raise DataError(message, path=shown, line=line) from None


def parse_number(
    cell: str, column: str, shown: str, line: int, *, missing_ok: bool, nonnegative: bool = False
) -> float:
    """A finite float (``>= 0`` with ``nonnegative``); NaN for a missing cell when
    ``missing_ok``, else ``DataError``."""
    text = cell.strip()
    if text.lower() in MISSING:
        if missing_ok:
            return math.nan
        raise DataError(missing_feature(column, cell), path=shown, line=line)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        message = f"column {column!r}: {cell!r} is not a finite number"
        if missing_ok and text.lower() in LOOKS_MISSING:
            message += "; a missing value is an empty cell, NA or NaN (or, for a day, no row)"
        raise DataError(message, path=shown, line=line)
    if nonnegative and value < 0:
        message = (
            f"column {column!r}: {cell!r} is negative; data.log_target = true needs "
            "values >= 0 (set it to false for a series that can be negative)"
        )
        raise DataError(message, path=shown, line=line)
    return value


def _check_config(
    layout: str, series: list[str] | None, needed: list[str], extras: Sequence[str]
) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    if isinstance(series, str) or isinstance(extras, str):
        raise ConfigError("series and extra_columns take a list of names, not one string")
    if series is not None and (not series or len(set(series)) != len(series)):
        raise ConfigError(f"series must name distinct series, got {series}")
    if len(set(needed)) != len(needed):
        raise ConfigError(f"each column may play one role only, got {needed}")


class _Rows:
    """The observations and per-day extra columns of a daily CSV, one data row at a time, with
    the file's line of each (for errors naming a duplicate's first line)."""

    def __init__(
        self,
        layout: str,
        series: list[str] | None,
        columns: tuple[str, str, str],
        extras: list[str],
        date_format: str,
        shown: str,
        nonnegative: bool,
        blank_ok: Sequence[str] = (),
    ) -> None:
        self.layout, self.series, self.extras = layout, series, extras
        self.blank_ok = frozenset(blank_ok)
        self.nonnegative = nonnegative
        self.date_column, series_column, value_column = columns
        self.series_column, self.value_column = series_column, value_column
        self.date_format, self.shown = date_format, shown
        self.kept = None if series is None else set(series)
        self.observed: dict[str, dict[datetime.date, tuple[float, int]]] = {}  # value, line
        self.names: dict[str, None] = {}  # every series name of a long file, kept or not
        self.features: dict[datetime.date, tuple[list[float], int]] = {}  # first row's, line

    def add(self, line: int, row: list[str], at: dict[str, int]) -> None:
        shown = self.shown
        day = _parse_date(row[at[self.date_column]], self.date_format, shown, line)
        cells: list[tuple[str, str, str]]  # series, column, cell
        if self.layout == "wide":
            cells = [(name, name, row[at[name]]) for name in self.series or ()]
        else:
            name = row[at[self.series_column]].strip()
            if not name:
                message = f"empty series name in column {self.series_column!r}"
                raise DataError(message, path=shown, line=line)
            problem = name_problem(name)
            if problem is not None:
                raise DataError(f"series name: {problem}", path=shown, line=line)
            self.names.setdefault(name)
            wanted = self.kept is None or name in self.kept
            cells = [(name, self.value_column, row[at[self.value_column]])] if wanted else []
        for name, column, cell in cells:
            value = parse_number(
                cell, column, shown, line, missing_ok=True, nonnegative=self.nonnegative
            )
            days = self.observed.setdefault(name, {})
            if day in days:
                message = f"duplicate date {day} for series {name!r} (first on line {days[day][1]})"
                raise DataError(message, path=shown, line=line)
            days[day] = (value, line)
        extras = self.extras
        row_features = [
            parse_number(row[at[c]], c, shown, line, missing_ok=c in self.blank_ok) for c in extras
        ]
        if day not in self.features:
            self.features[day] = (row_features, line)
        elif not _same(self.features[day][0], row_features):
            earlier, first_line = self.features[day]
            i = next(i for i in range(len(extras)) if not _same([earlier[i]], [row_features[i]]))
            message = (
                f"column {extras[i]!r} is {row_features[i]} for {day} here "
                f"but {earlier[i]} on line {first_line}: one date, one value"
            )
            raise DataError(message, path=shown, line=line)


def read_daily_csv(
    path: str | Path,
    *,
    layout: str = "long",
    date_column: str = "date",
    series: list[str] | None = None,
    series_column: str = "series",
    value_column: str = "value",
    extra_columns: Sequence[str] = (),
    date_format: str = "%Y-%m-%d",
    nonnegative: bool = False,
    optional: Sequence[str] = (),
    blank_ok: Sequence[str] = (),
    named_by: Mapping[str, str] | None = None,
    series_hint: str = "data.series names the series to read",
) -> DailyFrame:
    """Read daily series from a UTF-8 CSV file (csv module, no pandas).

    ``layout="long"``: one observation per row in ``date_column``, ``series_column`` and
    ``value_column``; ``series`` (optional) keeps only those series, in that order (default:
    every series, in order of first appearance), and each must occur. ``layout="wide"``: one row
    per date, one column per series; ``series`` names those columns and is required. A series
    of ``series`` also in ``optional`` may be absent from the file (no row in long layout, no
    column in wide): the frame then has no values for it.
    ``extra_columns`` are numeric per-day columns (a holiday flag, exogenous features) that may
    not be empty, but those also in ``blank_ok`` may: an empty cell there is NaN, as a day
    absent from the file is, its line kept in ``DailyFrame.blank`` (for a reader that needs
    values only on some days: a known covariate of forecasting windows). In long layout every
    row of one date must give the extra columns the same values.

    Empty, ``NA`` and ``NaN`` cells and days absent from the file become NaN. Rows may come in any
    order; rows of series not kept are still checked for their date and extra columns, and their
    dates count towards the range. With ``nonnegative`` a negative value of a kept series is an
    error (a series modelled in log space: clipping it to 0 would change the data silently).
    Raises ``ConfigError`` for a bad argument and ``DataError`` ("path:line: message") for a
    missing, empty or malformed file.
    """
    extras = list(extra_columns)
    if layout == "wide":
        if series is None:
            raise ConfigError("layout 'wide' needs series=[...]: the names of the value columns")
        needed = [date_column, *series, *extras]
    else:
        needed = [date_column, series_column, value_column, *extras]
    _check_config(layout, series, needed, extra_columns)
    if isinstance(optional, str) or not set(optional) <= set(series or ()):
        raise ConfigError(f"optional must name series of {series}, got {optional!r}")

    shown = str(path)
    header_line, header, records = csv_header(Path(path), shown)
    if layout == "wide" and series is not None and optional:
        present = {name.strip() for name in header}
        series = [name for name in series if name in present or name not in optional]
        needed = [date_column, *series, *extras]
    at = column_positions(header, needed, shown, header_line, named_by)

    roles = (date_column, series_column, value_column)
    if isinstance(blank_ok, str) or not set(blank_ok) <= set(extras):
        raise ConfigError(f"blank_ok must name extra columns of {extras}, got {blank_ok!r}")
    rows = _Rows(layout, series, roles, extras, date_format, shown, nonnegative, blank_ok)
    for line, row in records:
        if len(row) != len(header):
            message = f"row has {len(row)} fields but the header has {len(header)}"
            raise DataError(message, path=shown, line=line)
        rows.add(line, row, at)
    observed, features = rows.observed, rows.features
    if not features:
        raise DataError("no data rows after the header", path=shown, line=header_line)
    names = list(observed) if series is None else series
    names = [name for name in names if name in observed or name not in optional]
    for name in names:
        if name not in observed:
            found = sorted(rows.names)  # the file's own names, not only the series kept
            message = (
                f"series {name!r} never occurs in column {series_column!r} (found {found}); "
                f"{series_hint}"
            )
            raise DataError(message, path=shown)

    start, end = min(features), max(features)
    n_days = (end - start).days + 1
    dates = [start + datetime.timedelta(days=i) for i in range(n_days)]
    values = {name: np.full(n_days, np.nan) for name in names}
    for name in names:
        for day, (value, _) in observed[name].items():
            values[name][(day - start).days] = value
    columns = {column: np.full(n_days, np.nan) for column in extras}
    blank: dict[str, dict[int, int]] = {column: {} for column in blank_ok}
    for day, (row_features, line) in features.items():
        for column, value in zip(extras, row_features, strict=True):
            columns[column][(day - start).days] = value
            if column in blank and math.isnan(value):
                blank[column][(day - start).days] = line
    return DailyFrame(path=shown, dates=dates, values=values, columns=columns, blank=blank)


def read_described_csv(
    path: str | Path,
    data: Mapping[str, Any],
    *,
    series: list[str] | None,
    optional: Sequence[str] = (),
    blank_ok: Sequence[str] = (),
    named_by: Mapping[str, str] | None = None,
    series_hint: str = "data.series names the series to read",
) -> DailyFrame:
    """``read_daily_csv`` of a file as a daily source's ``[data]`` table (or the ``windows``
    codec's copy of it) describes it: its layout, columns, date format, holiday and covariate
    columns, and ``log_target`` (no negative values); a column the file lacks is named by its
    key (``named_by``, else ``daily_keys(data)``)."""
    return read_daily_csv(
        path,
        layout=data["layout"],
        date_column=data["date_column"],
        series=series,
        series_column=data["series_column"],
        value_column=data["value_column"],
        extra_columns=[c for c in [data["holiday_column"], *data["exogenous"]] if c],
        date_format=data["date_format"],
        nonnegative=bool(data["log_target"]),
        optional=optional,
        blank_ok=blank_ok,
        named_by=daily_keys(data) if named_by is None else named_by,
        series_hint=series_hint,
    )


def _same(a: list[float], b: list[float]) -> bool:
    """Whether two rows' extra columns agree, an empty cell (NaN) agreeing with one alone."""
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def calendar_features(
    dates: Sequence[datetime.date],
    *,
    fourier_terms: int = 3,
    holiday: np.ndarray | None = None,
    exogenous: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Calendar inputs for a forecaster: a float32 (days, features) matrix and its column names.

    Columns, in order: ``dow_0``..``dow_6`` (day-of-week one-hot, Monday = 0);
    ``year_sin_k``, ``year_cos_k`` for k = 1..``fourier_terms``: sin/cos(2 pi k t / 365.25) with
    t the 1-based day of the year, so yearly seasonality is smooth across New Year; ``holiday``
    if given; then each ``exogenous`` column under its key, in order. ``holiday`` and exogenous
    arrays are (days,) and may not hold NaN (``DataError`` naming the feature and first date);
    on a ``DailyFrame`` pass ``frame.columns[...]`` restricted to days the file has.
    """
    if fourier_terms < 0:
        raise ConfigError(f"fourier_terms must be >= 0, got {fourier_terms}")
    n_days = len(dates)
    weekday = np.zeros((n_days, 7))
    weekday[np.arange(n_days), [day.weekday() for day in dates]] = 1.0
    blocks = [weekday]
    names = [f"dow_{i}" for i in range(7)]

    t = np.array([day.timetuple().tm_yday for day in dates], dtype=np.float64)
    for k in range(1, fourier_terms + 1):
        angle = 2.0 * np.pi * k * t / 365.25
        blocks += [np.sin(angle)[:, None], np.cos(angle)[:, None]]
        names += [f"year_sin_{k}", f"year_cos_{k}"]

    given = [("holiday", holiday)] if holiday is not None else []
    given += list((exogenous or {}).items())
    for name, array in given:
        if name in names:
            raise ConfigError(f"feature name {name!r} is used twice (calendar names: {names})")
        try:
            column = np.asarray(array, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"feature {name!r} is not numeric") from None
        if column.shape != (n_days,):
            raise DataError(f"feature {name!r} has shape {column.shape}, expected ({n_days},)")
        bad = ~np.isfinite(column)
        if bad.any():
            day = dates[int(np.argmax(bad))]
            raise DataError(f"feature {name!r} is missing (NaN) on {day}, first of {bad.sum()}")
        blocks.append(column[:, None])
        names.append(name)
    return np.concatenate(blocks, axis=1).astype(np.float32), names
