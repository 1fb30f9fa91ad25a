"""How `swarmrl inspect` shows a node to a person: rich renderables built from reply dicts.

Each view answers one question at a glance: is it learning (reward trend and sparkline), who is
it talking to (peers, what they sent, when), what is it dropping and why (counts by reason).
The same dicts are what ``--json`` prints, so scripts and people read the same figures.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int = 48) -> str:
    """Rewards in [0, 1] as block characters (a gap for steps without a reward)."""
    out = []
    for v in values[-width:]:
        if v is None or not math.isfinite(v):
            out.append(" ")
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, max(0, int(v * len(BLOCKS))))])
    return "".join(out)


def trend(recent: float | None, before: float | None) -> str:
    if recent is None:
        return "no steps yet"
    if before is None:
        return f"{recent:.2f} (last steps)"
    delta = recent - before
    word = "rising" if delta > 0.02 else "falling" if delta < -0.02 else "flat"
    return f"{recent:.2f} over the last 10 steps, {before:.2f} before: {word} ({delta:+.2f})"


def ago(seconds: float) -> str:
    if seconds < 1:
        return "now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def duration(seconds: float) -> str:
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s % 60:02d}s" if m else f"{s}s"


def short_id(peer_id: str, name: str = "") -> str:
    short = peer_id[:8] + "…" + peer_id[-6:] if len(peer_id) > 16 else peer_id
    return f"{name} ({short})" if name else short


def by_prefix(counters: dict[str, int], prefix: str) -> dict[str, int]:
    p = prefix + ":"
    return {k[len(p):]: v for k, v in counters.items() if k.startswith(p) and v}


def counts(d: dict[str, int], empty: str = "none") -> str:
    items = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in items) if items else empty


# --- views -----------------------------------------------------------------------------------
def status_view(s: dict[str, Any]) -> RenderableType:
    n = s["node"]
    target = f"/{n['target_steps']}" if n["target_steps"] else ""
    last = s.get("last_step") or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("node", f"{n['name']}  {n['peer_id']}")
    grid.add_row("state", f"[bold]{n['state']}[/]  step {n['step']}{target}, policy "
                 f"v{s['policy_version']}, up {duration(s['uptime_seconds'])}")
    grid.add_row("swarm", f"{s['swarm_id']}  roles {','.join(n['roles'])}  model {n['model']}")
    if n["state"] != "relaying":  # a bootstrap node has no model: no reward, no pace
        grid.add_row("reward", trend(s.get("reward_recent"), s.get("reward_before")))
        if s["rewards"]:
            grid.add_row("", f"[green]{sparkline(s['rewards'])}[/]")
        if last:
            grid.add_row("last step", _last_step(last))
        grid.add_row("pace", f"{s['steps_per_second']:.2f} steps/s, "
                     f"{s['tokens_per_second']:.0f} tokens/s trained")
    grid.add_row("peers", f"{n['peers']} heard from, {s['peers_connected']} connected now")
    c = s["counters"]
    grid.add_row("admitted", counts(by_prefix(c, "admitted")))
    grid.add_row("dropped", counts(by_prefix(c, "dropped"), "nothing"))
    grid.add_row("published", counts(by_prefix(c, "published")))
    if s["tasks_queued"]:
        grid.add_row("queued", f"{s['tasks_queued']} submitted task(s) waiting")
    for k, v in sorted(s["extra"].items()):
        grid.add_row(k, v)
    return grid


KNOWN = {"step", "time", "reward", "external_reward", "loss", "tokens", "completion_tokens",
         "seconds", "groups_local", "groups_external", "groups_with_signal", "policy_version",
         "pool", "peers"}


def _last_step(row: dict[str, Any]) -> str:
    parts = [f"{row.get('groups_local', 0)} local + {row.get('groups_external', 0)} external "
             f"groups ({row.get('groups_with_signal', 0)} with signal)"]
    if row.get("external_reward") is not None:
        parts.append(f"external reward {row['external_reward']:.2f}")
    if row.get("loss") is not None:
        parts.append(f"loss {row['loss']:.4g}")
    parts.append(f"{row.get('seconds', 0):.2f} s")
    # fields added by other roles and losses: shown as they come, no change needed here
    parts += [f"{k} {_fmt(v)}" for k, v in row.items() if k not in KNOWN]
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if not isinstance(v, str) else v


def peers_view(p: dict[str, Any]) -> RenderableType:
    t = Table(title=f"{len(p['peers'])} peers heard from, {len(p['connected'])} connected",
              title_justify="left")
    numeric = ("v", "admitted", "in pool", "trained", "trust")
    for col in ("peer", "model", "roles", "v", "last seen", "admitted", "in pool", "trained",
                "dropped", "trust", "link"):
        t.add_column(col, justify="right" if col in numeric else "left")
    for peer in p["peers"]:
        t.add_row(
            short_id(peer["peer_id"], peer["name"]),
            peer["model"] or f"[dim]({'no model' if peer['has_card'] else 'no card yet'})[/]",
            ",".join(peer["roles"]),
            str(peer["policy_version"]) if peer["has_card"] else "",
            ago(peer["last_seen_seconds_ago"]),
            str(peer["admitted"]),
            str(peer["pool_groups"]),
            str(peer.get("trained", 0)),
            counts(peer["dropped"], "-"),
            _trust(peer),
            "[green]up[/]" if peer["connected"] else "[dim]-[/]",
        )
    parts: list[RenderableType] = [t]
    for peer in p["peers"]:  # who teaches whom (on-policy distillation)
        who = short_id(peer["peer_id"], peer["name"])
        if n := peer.get("distill_received"):
            parts.append(Text(f"{who} teaches this node: {n} groups scored"))
        if n := peer.get("distill_served"):
            parts.append(Text(f"this node teaches {who}: {n} requests answered"))
    for pid, why in sorted(p["refused"].items()):
        parts.append(Text(f"refused {short_id(pid)}: {why}", style="yellow"))
    return Group(*parts)


def _trust(peer: dict[str, Any]) -> str:
    """The guard's reputation: plain when clean, yellow when falling, red when ignored."""
    rep = peer.get("reputation", 1.0)
    if peer.get("ignored"):
        return f"[red]{rep:.2f} ignored[/]"
    return f"{rep:.2f}" if rep >= 0.99 else f"[yellow]{rep:.2f}[/]"


def pool_view(p: dict[str, Any], names: dict[str, str] | None = None) -> RenderableType:
    names = names or {}
    head = (f"pool {p['size']}/{p['capacity']} groups (at most {p['per_peer_cap']} per peer); "
            f"admitted {p['admitted']}; refused: {counts(p['dropped'], 'none')}; "
            f"evicted: {counts(p['evicted'], 'none')}")
    t = Table(title="newest entries", title_justify="left")
    for col in ("sender", "family", "task", "completions", "sender v", "received at step",
                "uses", "our reward"):
        t.add_column(col)
    for e in p["entries"]:
        r = e["local_reward"]
        t.add_row(short_id(e["sender"], names.get(e["sender"], "")), e["family"],
                  e["task_key"][:12], str(e["completions"]), str(e["policy_version"]),
                  str(e["received_step"]), str(e["uses"]),
                  "not scored yet" if r is None else f"{r:.2f}")
    by_peer = ", ".join(f"{short_id(k, names.get(k, ''))} {v}" for k, v in
                        sorted(p["by_peer"].items(), key=lambda kv: -kv[1]))
    return Group(Text(head), Text(f"by peer: {by_peer or 'empty'}"), t)


def rollouts_view(r: dict[str, Any], full: bool = False) -> RenderableType:
    parts: list[RenderableType] = []
    for g in r["rollouts"]:
        src = "local" if g["local"] else f"from {short_id(g['sender'])}"
        rewards = [c["reward"] for c in g["completions"]]
        mean = sum(rewards) / len(rewards) if rewards else 0.0
        prompt = " ".join(g["prompt"].split())
        parts.append(Text.from_markup(
            f"[bold]step {g['step']}[/] {src}  {g['family']}  reward {mean:.2f}  "
            f"answer [cyan]{_clip(g['answer'], 40, full)}[/]"
        ))
        parts.append(Text(f"  prompt: {_clip(prompt, 100, full)}", style="dim"))
        for c in g["completions"]:
            text = " ".join(c["text"].split())
            parts.append(Text(f"  {c['reward']:.2f}  {_clip(text, 100, full)}"))
    return Group(*parts) if parts else Text("no rollouts yet")


def _clip(s: str, n: int, full: bool) -> str:
    return s if full or len(s) <= n else s[: n - 1] + "…"


ROW_COLUMNS = ("step", "reward", "external_reward", "loss", "tokens", "groups_external",
               "groups_with_signal", "pool", "peers", "seconds")


def metrics_table(rows: list[dict[str, Any]]) -> Table:
    t = Table()
    for col in ROW_COLUMNS:
        t.add_column(col, justify="right")
    for row in rows:
        t.add_row(*[metric_cell(row.get(c)) for c in ROW_COLUMNS])
    return t


def metric_cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def metrics_line(row: dict[str, Any]) -> str:
    return "  ".join(f"{c} {metric_cell(row.get(c))}" for c in ROW_COLUMNS if c in row)


def nodes_view(n: dict[str, Any]) -> RenderableType:
    t = Table(title=f"{n['server']}: {len(n['nodes'])} node(s)", title_justify="left")
    for col in ("name", "peer id", "state", "step", "reward", "peers", "pool", "model"):
        t.add_column(col)
    for s in n["nodes"]:
        target = f"/{s['target_steps']}" if s["target_steps"] else ""
        reward = "-" if s["reward"] is None else f"{s['reward']:.2f}"
        t.add_row(s["name"], short_id(s["peer_id"]), s["state"], f"{s['step']}{target}",
                  reward, str(s["peers"]), str(s["pool_groups"]), s["model"])
    return t


def top_view(s: dict[str, Any], p: dict[str, Any], pool: dict[str, Any]) -> RenderableType:
    """One frame of `swarmrl inspect top`: status (reward sparkline, pace), peers, pool."""
    pool_line = (f"pool {pool['size']}/{pool['capacity']} groups, admitted {pool['admitted']}, "
                 f"evicted {counts(pool['evicted'], 'none')}")
    return Group(Panel(status_view(s), title="swarmrl inspect top", title_align="left"),
                 peers_view(p), Text(pool_line))
