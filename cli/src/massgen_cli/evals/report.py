"""Figures of an eval: pass@1 per system, cost per problem; a table, JSON and a chart.

Systems: the team's final answer, the winner's accepted answer, each member's first
answer inside the team, each member alone (``--baseline single``), and the oracle
(any member's first answer passes: the best a perfect judge of the team could do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from .results import CHART, SUMMARY

__all__ = ["print_summary", "summarise", "write_chart", "write_report"]


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 2) if values else None


def _system(key: str, label: str, kind: str, outcomes: list[bool]) -> dict[str, Any]:
    passed, total = sum(1 for o in outcomes if o), len(outcomes)
    return {
        "key": key, "label": label, "kind": kind, "passed": passed, "total": total,
        "pass_at_1": round(passed / total, 4) if total else None,
    }  # fmt: skip


def summarise(records: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The figures of ``records`` (one per problem) as a JSON-able mapping."""
    records = sorted(records, key=lambda r: r.get("index", 0))
    systems, singles = _systems(records)
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.get("status", "?")] = statuses.get(record.get("status", "?"), 0) + 1
    return {
        "benchmark": meta.get("benchmark"),
        "config": meta.get("config_source"),
        "seed": meta.get("seed"),
        "problems": len(records),
        "problem_ids": [r["id"] for r in records],
        "statuses": statuses,
        "fallback_finals": sum(1 for r in records if r["final"].get("fallback")),
        # The presentation made it worse: the winner's own answer passed, the final failed.
        "final_worse_than_winner": sum(
            1 for r in records if r["winner"].get("passed") and not r["final"].get("passed")
        ),
        "systems": systems,
        "headline": _headline(systems),
        "cost": _cost(records, singles),
        "sandbox": meta.get("sandbox"),
    }


def _systems(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Pass@1 of each system (the team's final and winner, each member, each plain-chat
    baseline, the oracle), and the agents that have a plain-chat baseline."""
    agents: list[str] = []
    for record in records:
        for agent in record.get("members", {}):
            if agent not in agents:
                agents.append(agent)
    systems = [
        _system("final", "team: final answer", "team", [r["final"]["passed"] for r in records]),
        _system("winner", "team: winner's answer", "team",
                [r["winner"]["passed"] for r in records]),
    ]  # fmt: skip
    for agent in agents:
        systems.append(
            _system(f"member:{agent}", f"{agent} (first answer in team)", "member",
                    [r["members"][agent]["passed"] for r in records if agent in r["members"]])
        )  # fmt: skip
    singles = [a for a in agents if any(a in r.get("baselines", {}).get("single", {})
                                        for r in records)]  # fmt: skip
    for agent in singles:
        outcomes = [r["baselines"]["single"][agent]["passed"] for r in records
                    if agent in r.get("baselines", {}).get("single", {})]  # fmt: skip
        systems.append(_system(f"single:{agent}", f"{agent} alone (plain chat)", "single",
                               outcomes))  # fmt: skip
    systems.append(_system("oracle", "oracle: any member passes", "oracle",
                           [r["oracle"] for r in records]))  # fmt: skip
    return systems, singles


def _headline(systems: list[dict[str, Any]]) -> dict[str, Any]:
    """The team's final answer against its best member, the best plain-chat baseline
    and the oracle (differences in pass@1)."""
    by_key = {s["key"]: s for s in systems}

    def best(kind: str) -> dict[str, Any] | None:
        scored = [s for s in systems if s["kind"] == kind and s["pass_at_1"] is not None]
        return max(scored, key=lambda s: s["pass_at_1"]) if scored else None

    final = by_key["final"]["pass_at_1"]
    headline: dict[str, Any] = {}
    for name, kind in (("best_member", "member"), ("best_single", "single")):
        top = best(kind)
        if top is not None and final is not None:
            headline[name] = {"key": top["key"], "pass_at_1": top["pass_at_1"]}
            headline[f"final_minus_{name}"] = round(final - top["pass_at_1"], 4)
    oracle = by_key["oracle"]["pass_at_1"]
    if final is not None and oracle is not None:
        headline["final_minus_oracle"] = round(final - oracle, 4)
    return headline


def _cost(records: list[dict[str, Any]], singles: list[str]) -> dict[str, Any]:
    """Mean wall time, tokens and model calls per problem: the team's and each
    plain-chat baseline's."""
    cost: dict[str, Any] = {
        "team": {
            "mean_wall_seconds": _mean([r.get("wall_seconds") for r in records]),
            "mean_tokens": _mean([r.get("tokens") for r in records]),
            "mean_prompt_tokens": _mean([r.get("prompt_tokens") for r in records]),
            "mean_completion_tokens": _mean([r.get("completion_tokens") for r in records]),
            "mean_model_calls": _mean([r.get("model_calls") for r in records]),
        }
    }
    for agent in singles:
        calls = [r["baselines"]["single"][agent] for r in records
                 if agent in r.get("baselines", {}).get("single", {})]  # fmt: skip
        cost[f"single:{agent}"] = {
            "mean_wall_seconds": _mean([c.get("wall_seconds") for c in calls]),
            "mean_tokens": _mean([c.get("tokens") for c in calls]),
            "mean_model_calls": 1.0,
        }
    return cost


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_summary(summary: dict[str, Any], stream: TextIO) -> None:
    """The figures as a rich table (plain text when ``stream`` is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, width=110 if not stream.isatty() else None)
    title = (f"{summary['benchmark']} - {summary['problems']} problem(s) - "
             f"team: {summary['config']}")  # fmt: skip
    table = Table(title=title, title_justify="left")
    table.add_column("system")
    table.add_column("pass@1", justify="right")
    table.add_column("passed", justify="right")
    table.add_column("tokens/problem", justify="right")
    table.add_column("wall s/problem", justify="right")
    table.add_column("model calls", justify="right")
    styles = {"team": "bold cyan", "member": "", "single": "green", "oracle": "dim"}
    for system in summary["systems"]:
        cost = summary["cost"].get(system["key"]) or (
            summary["cost"]["team"] if system["kind"] == "team" else {}
        )
        tokens, wall = cost.get("mean_tokens"), cost.get("mean_wall_seconds")
        calls = cost.get("mean_model_calls")
        table.add_row(
            system["label"], _pct(system["pass_at_1"]), f"{system['passed']}/{system['total']}",
            f"{tokens:,.0f}" if tokens is not None else "",
            f"{wall:.1f}" if wall is not None else "",
            f"{calls:.1f}" if calls is not None else "",
            style=styles.get(system["kind"], ""),
        )  # fmt: skip
    console.print(table)
    headline = summary["headline"]
    for name in ("best_member", "best_single"):
        if name in headline:
            delta = headline[f"final_minus_{name}"]
            console.print(
                f"team final vs {name.replace('_', ' ')} ({headline[name]['key']}): "
                f"{'+' if delta >= 0 else ''}{100 * delta:.1f} points"
            )
    if "final_minus_oracle" in headline:
        delta = headline["final_minus_oracle"]
        console.print(f"team final vs oracle: {'+' if delta >= 0 else ''}{100 * delta:.1f} points")
    if "final_worse_than_winner" in summary:
        console.print(
            f"final answer failed where the winner's own answer passed: "
            f"{summary['final_worse_than_winner']} of {summary['problems']}"
        )
    if summary["statuses"].keys() - {"completed"}:
        console.print(f"run statuses: {summary['statuses']}")
    if summary.get("sandbox"):
        console.print(f"sandbox: {summary['sandbox']}", style="dim")


_COLOURS = {"team": "#1f77b4", "member": "#ff7f0e", "single": "#2ca02c", "oracle": "#7f7f7f"}


def write_chart(summary: dict[str, Any], path: Path) -> Path:
    """A bar chart of pass@1 per system (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in summary["systems"] if s["pass_at_1"] is not None]
    labels = [s["label"].replace(" (", "\n(") for s in systems]
    values = [100 * s["pass_at_1"] for s in systems]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.25 * len(systems) + 2), 4.8), dpi=110)
    bars = ax.bar(range(len(systems)), values, color=[_COLOURS[s["kind"]] for s in systems])
    for bar, system in zip(bars, systems, strict=True):
        ax.annotate(
            f"{100 * system['pass_at_1']:.1f}%\n{system['passed']}/{system['total']}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points",
        )  # fmt: skip
    ax.set_xticks(range(len(systems)), labels, fontsize=7.5)
    ax.set_ylim(0, 132)  # room for the labels above 100% and the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("pass@1 (%)")
    team = summary["cost"]["team"]
    subtitle = (f"{summary['problems']} problems; team per problem: "
                f"{team['mean_tokens'] or 0:,.0f} tokens, {team['mean_wall_seconds'] or 0:.1f} s, "
                f"{team['mean_model_calls'] or 0:.1f} model calls")  # fmt: skip
    ax.set_title(f"{summary['benchmark']}: team ({summary['config']}) vs its members\n{subtitle}",
                 fontsize=9)  # fmt: skip
    ax.spines[["top", "right"]].set_visible(False)
    from matplotlib.patches import Patch

    names = {"team": "team", "member": "member, inside the team", "single": "member alone",
             "oracle": "any member (oracle)"}  # fmt: skip
    kinds = list(dict.fromkeys(s["kind"] for s in systems))
    ax.legend(handles=[Patch(color=_COLOURS[k], label=names[k]) for k in kinds],
              loc="upper center", fontsize=7, frameon=False, ncols=len(kinds))  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    folder: Path, records: list[dict[str, Any]], meta: dict[str, Any], *, chart: bool = True
) -> dict[str, Any]:
    """``summary.json`` (and ``chart.png``) in ``folder``; returns the summary."""
    summary = summarise(records, meta)
    (folder / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if chart and records:
        write_chart(summary, folder / CHART)
    return summary
