"""Readable output of answers for people (``--json`` is for programs)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from crux.oracle.query import Answer, Density

BAR_WIDTH = 20


def bar(p: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(1.0, p)) * width)
    return "█" * filled + "·" * (width - filled)


def describe(answer: Answer) -> str:
    q = answer.query
    parts = [f"do({v}={s})" for v, s in q.do.items()] + [f"{v}={s}" for v, s in q.given.items()]
    return f"if {', '.join(parts) if parts else 'nothing is set or seen'} — {q.as_}'s beliefs, {answer.method}, {answer.device}"


def answer_table(answer: Answer, title: str | None = None) -> Table:
    table = Table(title=title or describe(answer), title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("outcome")
    table.add_column("state")
    table.add_column("p", justify="right")
    table.add_column("90% interval", justify="right")
    table.add_column("")
    for name, dist in answer.outcomes.items():
        if isinstance(dist, Density):
            low, high = dist.interval
            shown = f"{dist.mean:.4g} (sd {dist.sd:.3g})" + ("" if dist.stderr is None else f" ± {dist.stderr:.2g}")
            table.add_row(name, "mean", shown, f"{low:.4g} – {high:.4g}", "")
            continue
        for i, (state, p) in enumerate(zip(dist.states, dist.p)):
            low, high = dist.interval[i]
            shown = f"{p:.4f}" if dist.stderr is None else f"{p:.4f} ± {dist.stderr[i]:.4f}"
            table.add_row(name if i == 0 else "", state, shown, f"{low:.3f} – {high:.3f}", bar(p))
    return table


def print_answer(answer: Answer, console: Console | None = None) -> None:
    (console or Console()).print(answer_table(answer))
