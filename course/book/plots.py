"""Plotting helpers shared by the chapters: one house style and a small box-and-arrow kit.

Typical use in a chapter::

    from course.book import plots
    plots.use_house_style()

    fig, ax = plt.subplots(figsize=(7, 2))
    boxes = plots.flow(ax, ["tokenizer", "body", "head"], colors=["blue", "green", "orange"])
    plots.diagram_axes(ax, title="The pipeline")

Diagrams are ordinary matplotlib axes with data coordinates chosen by the caller; the helpers
draw rounded boxes (:func:`box`), arrows between points or boxes (:func:`arrow`,
:func:`connect`) and left-to-right chains of boxes (:func:`flow`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# A colour-blind-friendly palette (Okabe & Ito), by name, with light tints for box fills.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "red": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "grey": "#666666",
}
TINTS = {
    "blue": "#D6E9F5",
    "orange": "#FBEBCC",
    "green": "#CCEDE3",
    "red": "#F7DDCC",
    "purple": "#F5E4EE",
    "sky": "#DDF0FB",
    "yellow": "#FCF9D9",
    "grey": "#EEEEEE",
}
CYCLE = ["blue", "orange", "green", "red", "purple", "sky", "grey"]

# Figure rules of the book. A figure is drawn at FIGURE_DPI pixels per inch and shown at its
# natural size in a text column at least MAX_WIDTH_IN * FIGURE_DPI pixels wide, so text of
# MIN_FONT_PT points appears MIN_FONT_PT * FIGURE_DPI / 72 = 12.5 px high on screen (9 px or
# more as long as the browser shrinks it by no more than 28 %, which the page test checks).
FIGURE_DPI = 100
MAX_WIDTH_IN = 7.0
MIN_FONT_PT = 9.0
MAX_COLUMNS = 2


def use_house_style() -> None:
    """Set the course's matplotlib defaults (idempotent): readable fonts, light grid, no top or
    right spine, the palette as colour cycle, constrained layout."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.8, 3.8),
            "figure.dpi": FIGURE_DPI,
            "savefig.dpi": FIGURE_DPI,
            "figure.constrained_layout.use": True,
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.labelsize": 10,
            "xtick.labelsize": 9.5,
            "ytick.labelsize": 9.5,
            "legend.fontsize": 9.5,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=[PALETTE[c] for c in CYCLE]),
            "legend.frameon": False,
            "image.cmap": "viridis",
        }
    )


def figure_problems(fig) -> list[str]:
    """What breaks the book's figure rules in ``fig``: wider than ``MAX_WIDTH_IN`` inches, more
    than ``MAX_COLUMNS`` panels side by side, or visible text smaller than ``MIN_FONT_PT``."""
    from matplotlib.text import Text

    problems = []
    width = fig.get_figwidth()
    if width > MAX_WIDTH_IN + 1e-6:
        problems.append(f"figure is {width:.1f} in wide (at most {MAX_WIDTH_IN:g} in)")
    boxes = [ax.get_position() for ax in fig.axes
             if ax.get_visible() and ax.get_label() != "<colorbar>"]
    # panels side by side: the most panels that one horizontal line through a panel's middle cuts
    across = max((sum(b.y0 < (a.y0 + a.y1) / 2 < b.y1 for b in boxes) for a in boxes), default=0)
    if across > MAX_COLUMNS:
        problems.append(f"{across} panels side by side (at most {MAX_COLUMNS}; stack them)")
    small = sorted({round(t.get_fontsize(), 1) for t in fig.findobj(Text)
                    if t.get_visible() and t.get_text().strip()
                    and t.get_fontsize() < MIN_FONT_PT - 1e-6})
    if small:
        problems.append(f"text at {small} pt (at least {MIN_FONT_PT:g} pt)")
    return problems


def color(name: str) -> str:
    """A palette colour by name (``"blue"``), or any matplotlib colour passed through."""
    return PALETTE.get(name, name)


@dataclass(frozen=True)
class Box:
    """A drawn box: centre ``(x, y)``, width ``w``, height ``h`` in data coordinates."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)


def box(
    ax: Axes,
    x: float,
    y: float,
    text: str,
    *,
    w: float = 1.6,
    h: float = 0.7,
    color: str = "blue",
    fontsize: float = 10,
    dashed: bool = False,
    bold: bool = False,
) -> Box:
    """Draw a rounded box centred at ``(x, y)`` with ``text`` inside; return its geometry.

    ``color`` names a palette entry (edge in the colour, fill in its tint) or is any matplotlib
    colour (then the fill is white)."""
    edge = PALETTE.get(color, color)
    fill = TINTS.get(color, "white")
    pad = min(w, h) * 0.12
    patch = FancyBboxPatch(
        (x - w / 2 + pad, y - h / 2 + pad),
        w - 2 * pad,
        h - 2 * pad,
        boxstyle=f"round,pad={pad}",
        linewidth=1.4,
        edgecolor=edge,
        facecolor=fill,
        linestyle="--" if dashed else "-",
        zorder=2,
    )
    ax.add_patch(patch)
    ax.text(
        x,
        y,
        text,
        ha="center",
        va="center",
        fontsize=fontsize,
        fontweight="bold" if bold else "normal",
        zorder=3,
    )
    return Box(x, y, w, h)


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    text: str | None = None,
    color: str = "grey",
    curve: float = 0.0,
    dashed: bool = False,
    fontsize: float = 9,
) -> None:
    """Draw an arrow from point ``start`` to point ``end`` (optionally curved by ``curve``, the
    arc's bend as a fraction of its length) with an optional label at its middle."""
    c = PALETTE.get(color, color)
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=14,
            linewidth=1.4,
            color=c,
            linestyle="--" if dashed else "-",
            connectionstyle=f"arc3,rad={curve}",
            shrinkA=1,
            shrinkB=1,
            zorder=1,
        )
    )
    if text:
        # the middle of the drawn arc: halfway from the chord's middle to the curve's control point
        dx, dy = end[0] - start[0], end[1] - start[1]
        mx = (start[0] + end[0]) / 2 + curve / 2 * dy
        my = (start[1] + end[1]) / 2 - curve / 2 * dx
        ax.text(
            mx,
            my,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            color=c,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
            zorder=4,
        )


def connect(ax: Axes, a: Box, b: Box, **kwargs) -> None:
    """Arrow from box ``a`` to box ``b``: side to side when ``b`` lies mostly beside ``a``,
    top/bottom to bottom/top when it lies mostly above or below. Keyword arguments go to
    :func:`arrow`."""
    dx, dy = b.x - a.x, b.y - a.y
    if abs(dx) >= abs(dy):
        start, end = (a.right, b.left) if dx > 0 else (a.left, b.right)
    else:
        start, end = (a.top, b.bottom) if dy > 0 else (a.bottom, b.top)
    arrow(ax, start, end, **kwargs)


def flow(
    ax: Axes,
    labels: Sequence[str],
    *,
    y: float = 0.0,
    x0: float = 0.0,
    w: float = 1.6,
    h: float = 0.7,
    gap: float = 0.6,
    colors: Sequence[str] | None = None,
    fontsize: float = 10,
    arrow_texts: Sequence[str | None] | None = None,
) -> list[Box]:
    """Draw ``labels`` as a left-to-right chain of boxes joined by arrows, the first centred at
    ``(x0, y)``; return the boxes. ``arrow_texts[i]`` labels the arrow after box ``i``."""
    colors = list(colors) if colors is not None else [CYCLE[i % len(CYCLE)] for i in range(len(labels))]
    boxes = [
        box(ax, x0 + i * (w + gap), y, label, w=w, h=h, color=colors[i], fontsize=fontsize)
        for i, label in enumerate(labels)
    ]
    for i, (a, b) in enumerate(zip(boxes, boxes[1:], strict=False)):
        text = arrow_texts[i] if arrow_texts is not None and i < len(arrow_texts) else None
        connect(ax, a, b, text=text)
    return boxes


def diagram_axes(
    ax: Axes,
    *,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    title: str | None = None,
) -> Axes:
    """Turn ``ax`` into a canvas for a diagram: no axes or grid, equal aspect, limits fitted to
    what was drawn unless given."""
    ax.set_aspect("equal")
    if xlim is None or ylim is None:
        ax.autoscale_view()
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
