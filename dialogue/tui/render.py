"""Small text renderings for the terminal UI (rich Text, no widgets)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from crux.oracle.query import Density, Distribution


def interval_bar(p: float, low: float, high: float, width: int = 10) -> str:
    """``█`` up to the interval's low end, ``▓`` to the mean, ``▒`` to the high end, ``·`` beyond."""
    cells = []
    for i in range(width):
        x = (i + 0.5) / width
        cells.append("█" if x <= low else "▓" if x <= p else "▒" if x <= high else "·")
    return "".join(cells)


def distribution(d: Distribution | Density, width: int = 6) -> Text:
    """One line per state: its full name, probability, bar, 90% interval in percent (a continuous
    outcome: its mean, sd and 90% interval)."""
    if isinstance(d, Density):
        low, high = d.interval
        return Text(f"mean {d.mean:.3g} sd {d.sd:.2g}\n90%: {low:.3g} to {high:.3g}")
    text = Text()
    pad = max(len(s) for s in d.states)
    for i, (state, p) in enumerate(zip(d.states, d.p)):
        low, high = d.interval[i]
        if i:
            text.append("\n")
        text.append(f"{state:<{pad}} {p:4.2f} ")
        text.append(interval_bar(p, low, high, width), style="cyan")
        text.append(f" {100 * low:.0f}-{100 * high:.0f}%", style="dim")
    return text


def share_bar(belief: float | None, value: float | None, width: int = 30) -> Text:
    """Belief share against value share as one bar (shares outside [0, 1] are clipped for drawing)."""
    text = Text()
    if belief is None or value is None:
        return text.append("no disagreement to split", style="dim")
    b = max(0.0, min(1.0, belief))
    n = round(b * width)
    text.append("█" * n, style="bold blue")
    text.append("█" * (width - n), style="bold magenta")
    text.append(f"  beliefs {belief:+.2f} · values {value:+.2f}")
    return text


def lottery_table(options: tuple[str, ...], predicted: dict[str, dict[str, dict[str, float]]]) -> Table:
    """What each option leads to: one column per option, one row per outcome state (percent)."""
    table = Table(expand=True, pad_edge=False, box=None)
    table.add_column("outcome")
    for option in options:
        table.add_column(option, justify="right")
    first = predicted[options[0]]
    for outcome, states in first.items():
        for state in states:
            cells = [f"{100 * predicted[o][outcome][state]:.0f}%" for o in options]
            table.add_row(f"{outcome}={state}", *cells)
    return table
