"""One look (colour, line style, hatch) per row or method name, shared by every figure, so that
``hard`` is the same colour in ``demo.png`` and ``dev_curves.png`` and ``autoets`` the same in a
forecast and in the scarcity sweep.

The known names take fixed places, in the order below (``KNOWN`` for a comparison's rows,
``FORECASTERS`` for the forecasting methods, each from the palette's first, darkest colours:
the two never share a figure); names the list lacks (a compare row of the user's) come after
them, sorted, so a figure's looks do not depend on the order its rows were read in. The
palette is ``tab20`` without its two greys (the history line of a forecast is grey): 18
colours; the next 18 places repeat them dashed (bars: hatched), and so on, so no two of the
first 72 places share a look (matplotlib's default cycle repeats after 10).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

LineStyle = Literal["-", "--", ":", "-."]

# compare's rows (config.SINGLE, the registered mechanisms, config.SUBNET). Fixed here, not
# read from the registry: a new mechanism goes at the end, and no colour moves.
KNOWN = (
    "single",
    "hard",
    "conditioned",
    "soft",
    "cross_stitch",
    "hierarchical",
    "sparse",
    "adapters",
    "mmoe",
    "ple",
    "single_subnet",
)

# the forecasting methods (forecasting.config.METHODS), the networks first
FORECASTERS = (
    "multitask",
    "single",
    "seasonal_naive",
    "seasonal_mean",
    "naive",
    "autoets",
    "autoarima",
    "prophet",
)

# tab20 less its greys (#7f7f7f, #c7c7c7), dark and light shade of a hue side by side
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
)
LINE_STYLES: tuple[LineStyle, ...] = ("-", "--", ":", "-.")
HATCHES = ("", "//", "..", "xx")


@dataclass(frozen=True)
class Look:
    """How one name is drawn: ``colour``, ``linestyle`` for lines and ``hatch`` for bars."""

    colour: str
    linestyle: LineStyle
    hatch: str


def look_of(index: int) -> Look:
    """The look at place ``index``: a colour of the palette, and past every colour a new style."""
    turn = index // len(PALETTE)
    return Look(
        PALETTE[index % len(PALETTE)],
        LINE_STYLES[turn % len(LINE_STYLES)],
        HATCHES[turn % len(HATCHES)],
    )


def looks(names: Iterable[str], known: Sequence[str] = KNOWN) -> dict[str, Look]:
    """The look of every name: a name in ``known`` has the look of its place there; the others
    follow all of ``known`` in sorted order, so the same names always get the same looks.
    ``known=()``: names that are no rows or methods (a sparse run's tasks), sorted from the
    first colour."""
    names = list(dict.fromkeys(names))
    unknown = sorted(n for n in names if n not in known)
    place = {n: list(known).index(n) for n in names if n in known}
    place.update({n: len(known) + i for i, n in enumerate(unknown)})
    return {n: look_of(place[n]) for n in names}
