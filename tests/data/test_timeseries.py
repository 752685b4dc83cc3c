"""Daily CSV reader and calendar features: known values, gaps as NaN, file:line errors."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlshare.data.timeseries import DailyFrame, calendar_features, daily_keys, read_daily_csv
from mtlshare.errors import ConfigError, DataError, MtlshareError

BIKE = Path(__file__).resolve().parents[2].parent / "shared/data/bike_sharing/day.csv"
D = datetime.date


def write(tmp_path: Path, text: str, name: str = "series.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def data_error(path: Path, line: int | None, **kwargs) -> DataError:
    """Read ``path`` expecting a DataError located at ``line``; return it for further checks."""
    with pytest.raises(DataError) as info:
        read_daily_csv(path, **kwargs)
    message = str(info.value)
    assert path.name in message
    assert info.value.line == line
    if line is not None:
        assert f"{path}:{line}: " in message
    return info.value


# --- reading known values ---------------------------------------------------------------------


def test_long_round_trip_with_gap_and_missing_cells(tmp_path):
    path = write(
        tmp_path,
        "date,series,value,holiday\n"
        "2024-01-01,a,1.5,1\n"
        "2024-01-01,b,10,1\n"
        "2024-01-02,a,,0\n"
        "2024-01-04,a,4,0\n"  # 2024-01-03 is absent from the file
        "2024-01-04,b,NA,0\n",
    )
    frame = read_daily_csv(path, extra_columns=["holiday"])
    assert isinstance(frame, DailyFrame)
    assert frame.dates == [D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4)]
    assert list(frame.values) == ["a", "b"]  # order of first appearance
    np.testing.assert_array_equal(frame.values["a"], [1.5, np.nan, np.nan, 4.0])
    np.testing.assert_array_equal(frame.values["b"], [10.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(frame.columns["holiday"], [1.0, 0.0, np.nan, 0.0])
    assert frame.values["a"].dtype == np.float64
    assert frame.index_of(D(2024, 1, 3)) == 2


def test_long_series_selects_and_orders(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-01-01,b,2\n2024-01-02,c,3\n")
    frame = read_daily_csv(path, series=["b", "a"])
    assert list(frame.values) == ["b", "a"]
    assert len(frame.dates) == 2  # c's date still counts towards the range
    np.testing.assert_array_equal(frame.values["b"], [2.0, np.nan])


def test_long_custom_column_names_and_date_format(tmp_path):
    path = write(tmp_path, "day;name;y\n\n03/01/2024;x;7\n01/01/2024;x;5\n".replace(";", ","))
    frame = read_daily_csv(
        path, date_column="day", series_column="name", value_column="y", date_format="%d/%m/%Y"
    )
    assert frame.dates[0] == D(2024, 1, 1) and frame.dates[-1] == D(2024, 1, 3)
    np.testing.assert_array_equal(frame.values["x"], [5.0, np.nan, 7.0])


def test_wide_round_trip_nan_spellings(tmp_path):
    path = write(
        tmp_path,
        "when,a,b,temp\n2024-03-01,1,NaN,0.5\n\n2024-03-02,nan,2,0.25\n2024-03-04, 3 ,,0.75\n",
    )
    frame = read_daily_csv(
        path, layout="wide", date_column="when", series=["b", "a"], extra_columns=["temp"]
    )
    assert list(frame.values) == ["b", "a"]
    assert len(frame.dates) == 4
    np.testing.assert_array_equal(frame.values["a"], [1.0, np.nan, np.nan, 3.0])
    np.testing.assert_array_equal(frame.values["b"], [np.nan, 2.0, np.nan, np.nan])
    np.testing.assert_array_equal(frame.columns["temp"], [0.5, 0.25, np.nan, 0.75])


def test_dates_are_continuous_across_month_and_leap_day(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-02-27,a,1\n2024-03-02,a,2\n")
    frame = read_daily_csv(path)
    steps = {(b - a).days for a, b in zip(frame.dates, frame.dates[1:], strict=False)}
    assert steps == {1} and D(2024, 2, 29) in frame.dates and len(frame.dates) == 5
    assert np.isnan(frame.values["a"][1:4]).all()


def test_index_of_outside_range(tmp_path):
    frame = read_daily_csv(write(tmp_path, "date,series,value\n2024-01-01,a,1\n"))
    assert frame.index_of(D(2024, 1, 1)) == 0
    with pytest.raises(DataError, match=r"series\.csv: date 2023-12-31 is outside"):
        frame.index_of(D(2023, 12, 31))


# --- errors name the file and the line --------------------------------------------------------


def test_missing_file(tmp_path):
    data_error(tmp_path / "absent.csv", None)


def test_a_folder_or_an_unreadable_file_is_a_data_error_naming_it(tmp_path, monkeypatch):
    assert str(data_error(tmp_path, None)) == f"{tmp_path}: cannot read: Is a directory"
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n")

    def refused(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refused)  # as a file of another user's (not root)
    assert str(data_error(path, None)) == f"{path}: cannot read: Permission denied"


@pytest.mark.parametrize("text", ["", "\n\n", "date,series,value\n", "date,series,value\n\n  \n"])
def test_empty_or_header_only(tmp_path, text):
    data_error(write(tmp_path, text), None if not text.startswith("date") else 1)


def test_an_empty_series_name_in_the_long_layout_is_refused_naming_its_line(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-01-01, ,2\n")
    error = data_error(path, 3)
    assert str(error) == f"{path}:3: empty series name in column 'series'"


def test_header_lacks_column(tmp_path):
    path = write(tmp_path, "date,name,value\n2024-01-01,a,1\n")
    error = data_error(path, 1)
    assert "'series'" in str(error) and "'name'" in str(error)
    error = data_error(write(tmp_path, "date,a\n2024-01-01,1\n"), 1, layout="wide", series=["b"])
    assert "'b'" in str(error)


def test_field_count_mismatch(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n\n2024-01-02,a\n")
    assert "2 fields" in str(data_error(path, 4))


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"date,series,value\n2024-01-01,a,1\n2024-01-02,caf\xe9,2\n")
    assert "UTF-8" in str(data_error(path, 3))


def test_unparsable_date(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-02-30,a,2\n")
    error = data_error(path, 3)
    assert "unparsable date '2024-02-30' (expected format '%Y-%m-%d', data.date_format)" in str(
        error
    )


def test_non_numeric_value(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-01-02,a,lots\n")
    error = data_error(path, 3)
    assert "'value'" in str(error) and "'lots'" in str(error)
    wide = write(tmp_path, "date,a,b\n2024-01-01,1,2\n2024-01-02,3,inf\n", "wide.csv")
    assert "'b'" in str(data_error(wide, 3, layout="wide", series=["a", "b"]))


def test_negative_value_is_an_error_only_when_asked(tmp_path):
    """A series modelled in log space (``data.log_target``) must not be clipped to 0 silently."""
    text = "date,series,value,t\n2024-01-01,a,1,-3\n2024-01-02,b,-0.5,-2\n2024-01-03,a,,-1\n"
    path = write(tmp_path, text)
    error = data_error(path, 3, extra_columns=["t"], nonnegative=True)
    assert "'-0.5' is negative" in str(error) and "log_target" in str(error)
    frame = read_daily_csv(path, extra_columns=["t"])  # without the flag it is a value
    assert frame.values["b"][1] == -0.5
    kept = read_daily_csv(path, series=["a"], extra_columns=["t"], nonnegative=True)
    assert math.isnan(kept.values["a"][2])  # a negative covariate or an unkept series is fine
    wide = write(tmp_path, "date,a,b\n2024-01-01,0,2\n2024-01-02,3,-1\n", "wide.csv")
    error = data_error(wide, 3, layout="wide", series=["a", "b"], nonnegative=True)
    assert "column 'b': '-1' is negative" in str(error)


def test_duplicate_date_names_both_lines(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-01-01,b,1\n2024-01-01,a,\n")
    assert "first on line 2" in str(data_error(path, 4))
    wide = write(tmp_path, "date,a\n2024-01-01,1\n2024-01-02,1\n2024-01-01,2\n", "wide.csv")
    assert "first on line 2" in str(data_error(wide, 4, layout="wide", series=["a"]))


@pytest.mark.parametrize("cell", ["", "NA", "nan"])
def test_extra_column_cannot_be_missing(tmp_path, cell):
    path = write(tmp_path, f"date,series,value,holiday\n2024-01-01,a,1,0\n2024-01-02,a,2,{cell}\n")
    assert "'holiday'" in str(data_error(path, 3, extra_columns=["holiday"]))


def test_extra_column_must_agree_within_a_date(tmp_path):
    path = write(tmp_path, "date,series,value,temp\n2024-01-01,a,1,0.5\n2024-01-01,b,2,0.6\n")
    error = data_error(path, 3, extra_columns=["temp"])
    assert "'temp'" in str(error) and "line 2" in str(error)


def test_an_extra_column_read_with_blank_ok_keeps_empty_cells_as_nan_and_their_lines(tmp_path):
    """As a day absent from the file, for a reader that needs values on some days only; in
    long layout the rows of one date still agree (two empty cells do)."""
    text = "date,series,value,temp\n2024-01-01,a,1,0.5\n2024-01-02,a,2,\n2024-01-02,b,3,NA\n"
    text += "2024-01-04,a,4,0.7\n"
    frame = read_daily_csv(write(tmp_path, text), extra_columns=["temp"], blank_ok=["temp"])
    np.testing.assert_array_equal(frame.columns["temp"], [0.5, np.nan, np.nan, 0.7])
    assert frame.where("temp", 1) == 3  # the date's first row
    assert frame.where("temp", 2) is None  # 2024-01-03: absent from the file
    assert frame.where("temp", 0) is None
    clash = write(tmp_path, text.replace("2024-01-02,b,3,NA", "2024-01-02,b,3,0.6"), "c.csv")
    assert "line 3" in str(data_error(clash, 4, extra_columns=["temp"], blank_ok=["temp"]))


def test_rows_of_one_date_that_differ_name_the_column_that_differs_not_an_empty_one(tmp_path):
    """Both rows of 2024-01-02 leave 'temp' empty and disagree on 'rain': the clash is in
    'rain' (two empty cells agree)."""
    text = "date,series,value,temp,rain\n2024-01-02,a,2,,1\n2024-01-02,b,3,,2\n"
    error = data_error(
        write(tmp_path, text), 3, extra_columns=["temp", "rain"], blank_ok=["temp", "rain"]
    )
    assert "column 'rain' is 2.0 for 2024-01-02 here but 1.0 on line 2" in str(error)


@pytest.mark.parametrize("blank_ok", ["t", ["rain"]], ids=["a string", "not an extra column"])
def test_blank_ok_names_extra_columns_as_a_list(tmp_path, blank_ok):
    """A string is refused, even one whose letters are extra columns (``"t"``, read as the
    column t); a column that is no extra column cannot be blank."""
    path = write(tmp_path, "date,series,value,temp,t\n2024-01-01,a,1,0.5,1\n")
    with pytest.raises(ConfigError, match="blank_ok must name extra columns of"):
        read_daily_csv(path, extra_columns=["temp", "t"], blank_ok=blank_ok)


def test_named_series_never_occurs(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n")
    assert "'z'" in str(data_error(path, None, series=["a", "z"]))


def test_a_series_that_never_occurs_is_shown_the_file_s_own_names(tmp_path):
    """A renamed series: the error lists every name in the file (the one to rename too), not
    only the series that were kept."""
    path = write(tmp_path, "date,kind,value\n2024-01-01,visitors,1\n2024-01-01,members,2\n")
    error = data_error(path, None, series=["casual", "members"], series_column="kind")
    assert str(error).endswith(
        "series 'casual' never occurs in column 'kind' (found ['members', 'visitors']); "
        "data.series names the series to read"
    )


def test_a_column_the_file_lacks_names_its_key_and_a_near_name(tmp_path):
    """The config key that named the column, from the source's [data] table (daily_keys),
    and a column of a near name: a covariate misspelt, a wide file read as long."""
    path = write(tmp_path, "date,series,value,promos\n2024-01-01,a,1,0\n")
    data = {"layout": "long", "date_column": "date", "series_column": "series"}
    data |= {"value_column": "value", "holiday_column": "", "exogenous": ["promo"]}
    error = data_error(path, 1, extra_columns=["promo"], named_by=daily_keys(data))
    assert str(error).endswith(
        "no column 'promo' in header ['date', 'series', 'value', 'promos'] (named by "
        "data.exogenous); did you mean 'promos'?"
    )
    wide = write(tmp_path, "date,a,b\n2024-01-01,1,2\n", "wide.csv")
    error = data_error(wide, 1, named_by=daily_keys(data))
    assert str(error).endswith(
        "no column 'series' in header ['date', 'a', 'b'] (named by data.series_column, of the "
        "long layout)"
    )


def test_a_value_written_as_missing_by_another_tool_says_what_is_read_as_missing(tmp_path):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-01-02,a,n/a\n")
    assert str(data_error(path, 3)).endswith(
        "column 'value': 'n/a' is not a finite number; a missing value is an empty cell, NA or "
        "NaN (or, for a day, no row)"
    )


def test_optional_series_may_be_absent(tmp_path):
    long = write(tmp_path, "date,series,value\n2024-01-01,a,1\n2024-01-02,a,2\n")
    frame = read_daily_csv(long, series=["z", "a"], optional=["z"])
    assert list(frame.values) == ["a"]
    kept = read_daily_csv(long, series=["a", "z"], optional=["a", "z"])
    assert list(kept.values) == ["a"]  # present: kept, in the order asked for
    assert "'a'" in str(data_error(long, None, series=["a", "b"], optional=["a"]))
    wide = write(tmp_path, "date,a,t\n2024-01-01,1,0.5\n", "wide.csv")
    frame = read_daily_csv(
        wide, layout="wide", series=["b", "a"], optional=["b"], extra_columns=["t"]
    )
    assert list(frame.values) == ["a"] and frame.columns["t"][0] == 0.5
    assert "no column 'b'" in str(data_error(wide, 1, layout="wide", series=["a", "b"]))
    with pytest.raises(ConfigError):
        read_daily_csv(long, series=["a"], optional=["q"])


def test_unterminated_quote_is_a_data_error(tmp_path):
    path = write(tmp_path, 'date,series,value\n2024-01-01,a,"1\n2024-01-02,a,2\n')
    assert "malformed CSV" in str(data_error(path, 2))
    # A quoted field spanning lines 2-3 is one record: the next record is line 4.
    quoted = write(tmp_path, 'date,series,value\n2024-01-01,a,"1\n"\n2024-01-01,b,x\n', "q.csv")
    assert "'x'" in str(data_error(quoted, 4))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layout": "tall"},
        {"layout": "wide"},  # wide needs series
        {"series": []},
        {"series": ["a", "a"]},
        {"extra_columns": "holiday"},
        {"value_column": "date"},
    ],
)
def test_bad_arguments_are_config_errors(tmp_path, kwargs):
    path = write(tmp_path, "date,series,value\n2024-01-01,a,1\n")
    with pytest.raises(ConfigError):
        read_daily_csv(path, **kwargs)


# --- the real bike-sharing file ---------------------------------------------------------------


@pytest.mark.skipif(not BIKE.exists(), reason=f"bike-sharing data not found at {BIKE}")
def test_bike_sharing_day_csv():
    frame = read_daily_csv(
        BIKE,
        layout="wide",
        date_column="dteday",
        series=["casual", "registered"],
        extra_columns=["holiday", "temp"],
    )
    assert len(frame.dates) == 731
    assert frame.dates[0] == D(2011, 1, 1) and frame.dates[-1] == D(2012, 12, 31)
    assert frame.values["casual"][0] == 331 and frame.values["registered"][0] == 654
    assert frame.columns["temp"][0] == pytest.approx(0.344167)
    assert frame.columns["holiday"][0] == 0
    for array in (*frame.values.values(), *frame.columns.values()):
        assert array.shape == (731,) and not np.isnan(array).any()
    assert set(np.unique(frame.columns["holiday"])) == {0.0, 1.0}


# --- calendar features ------------------------------------------------------------------------


def test_calendar_features_shapes_and_names():
    dates = [D(2024, 1, 1) + datetime.timedelta(days=i) for i in range(10)]
    holiday = np.zeros(10)
    holiday[0] = 1
    matrix, names = calendar_features(
        dates, fourier_terms=2, holiday=holiday, exogenous={"temp": np.linspace(0, 1, 10)}
    )
    assert matrix.shape == (10, 7 + 4 + 1 + 1) and matrix.dtype == np.float32
    assert names == [
        *(f"dow_{i}" for i in range(7)),
        *("year_sin_1", "year_cos_1", "year_sin_2", "year_cos_2"),
        *("holiday", "temp"),
    ]
    np.testing.assert_array_equal(matrix[:, :7].sum(axis=1), np.ones(10))
    assert matrix[0, names.index("holiday")] == 1 and matrix[9, names.index("temp")] == 1
    assert calendar_features(dates, fourier_terms=0)[0].shape == (10, 7)
    assert calendar_features([])[0].shape == (0, 13)


def test_monday_is_dow_0():
    matrix, _ = calendar_features([D(2024, 1, 1), D(2024, 1, 7)])  # a Monday, a Sunday
    np.testing.assert_array_equal(matrix[0, :7], [1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(matrix[1, :7], [0, 0, 0, 0, 0, 0, 1])


def test_fourier_values_at_known_days():
    days = [D(2023, 1, 1), D(2023, 7, 2), D(2024, 12, 31)]  # day of year 1, 183, 366
    matrix, names = calendar_features(days, fourier_terms=3)
    for row, t in enumerate([1, 183, 366]):
        for k in (1, 2, 3):
            angle = 2 * math.pi * k * t / 365.25
            assert matrix[row, names.index(f"year_sin_{k}")] == pytest.approx(math.sin(angle))
            assert matrix[row, names.index(f"year_cos_{k}")] == pytest.approx(math.cos(angle))
    assert matrix[1, names.index("year_cos_1")] == pytest.approx(-1, abs=1e-3)  # mid-year


def test_calendar_features_errors():
    dates = [D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 3)]
    with pytest.raises(ConfigError):
        calendar_features(dates, fourier_terms=-1)
    with pytest.raises(DataError, match=r"'holiday'.*2024-01-02"):
        calendar_features(dates, holiday=np.array([0.0, np.nan, np.nan]))
    with pytest.raises(DataError, match=r"'temp'.*2024-01-03"):
        calendar_features(dates, exogenous={"temp": np.array([0.1, 0.2, np.nan])})
    with pytest.raises(DataError, match="shape"):
        calendar_features(dates, holiday=np.zeros(2))
    with pytest.raises(ConfigError):
        calendar_features(dates, exogenous={"dow_0": np.zeros(3)})
    with pytest.raises(DataError, match=r"^feature 'temp' is not numeric$"):
        calendar_features(dates, exogenous={"temp": ["warm", "cold", "warm"]})


# --- any text at all: a DailyFrame or an MtlshareError, never a crash -------------------------

_FRAGMENTS = [
    "date,series,value",
    "date,a,b",
    ",holiday",
    "2024-01-01",
    "2024-01-03",
    "2024-02-30",
    "a",
    "b",
    "1.5",
    "-2",
    "NA",
    "nan",
    "inf",
    "",
    ",",
    "\n",
    "\r\n",
    '"',
    " ",
    "\x00",
    "\ufeff",
]
_CSV_LIKE = st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    content=st.one_of(st.text(), _CSV_LIKE, st.binary()),
    wide=st.booleans(),
    extras=st.sampled_from([(), ("holiday",)]),
)
def test_any_file_reads_or_raises_mtlshare_error(tmp_path_factory, content, wide, extras):
    raw = content if isinstance(content, bytes) else content.encode("utf-8")
    kwargs = {"layout": "wide", "series": ["a", "b"]} if wide else {}
    path = tmp_path_factory.mktemp("csv") / "any.csv"
    path.write_bytes(raw)
    try:
        frame = read_daily_csv(path, extra_columns=extras, **kwargs)
    except MtlshareError:
        return
    assert frame.dates and all(len(v) == len(frame.dates) for v in frame.values.values())
