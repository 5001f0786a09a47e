#!/usr/bin/env python3
"""The soak's table and verdict (bench/soak.sh), computed from a results folder.

Reads samples.tsv (one row per hub node per reading: phase baseline / run / end / after),
run.txt, and the RESULT lines of the generators (gen-*.out, polling.out). Prints Markdown:
the per-minute readings, the traffic, and the verdict; exits 1 when a check fails.

Checks, per hub node:
  memory flat  the least-squares RSS slope over the last SOAK_RSS_WINDOW_MIN minutes (at
               most two thirds of the run), times the window, is at most
               max(SOAK_RSS_TOLERANCE_PCT % of the mean RSS there, SOAK_RSS_TOLERANCE_MIB);
  no fd leak   open fds after the clients left <= baseline + SOAK_FD_SLACK;
  no task leak live tokio tasks after <= baseline + SOAK_TASK_SLACK;
  drained      sessions, sockets, rooms and heartbeat entries after are 0;
and over the generators: every ack came (unacked 0, bad acks 0).

usage: bench/soak/verdict.py RESULTS_DIR
"""

import csv
import glob
import json
import os
import sys


def env_num(name, default):
    v = os.environ.get(name, str(default))
    try:
        return float(v)
    except ValueError:
        sys.exit(f"verdict: {name} must be a number, got {v!r}")


def slope(points):
    """Least-squares slope of (x, y) points; 0 for fewer than two."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def num(v):
    return None if v in ("NA", "") else int(float(v))


def load_samples(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        for k in ("minute", "node", "rss_kib", "fds", "threads", "tasks", "sessions", "sockets",
                  "rooms", "deadlines", "ws", "polling"):
            r[k] = num(r[k])
    return rows


def results(folder):
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "gen-*.out"))) + [os.path.join(folder, "polling.out")]:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                if line.startswith("RESULT "):
                    out.append((os.path.basename(path), json.loads(line[7:])))
    return out


def cells(rows, key, fmt=str):
    return " / ".join("NA" if r[key] is None else fmt(r[key]) for r in rows)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    rows = load_samples(os.path.join(folder, "samples.tsv"))
    nodes = sorted({r["node"] for r in rows})
    by_phase = {}
    for r in rows:
        by_phase.setdefault((r["phase"], r["minute"]), []).append(r)
    order = [k for k in dict.fromkeys((r["phase"], r["minute"]) for r in rows)]

    print("## Soak run\n")
    run_txt = os.path.join(folder, "run.txt")
    if os.path.exists(run_txt):
        with open(run_txt) as f:
            for line in f:
                print(f"- {line.strip()}")
    print()
    per = " / ".join(f"n{n}" for n in nodes)
    print(f"| reading | load (1 min) | RSS MiB ({per}) | open fds | threads | tokio tasks | sessions | sockets | rooms | heartbeat entries |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in order:
        rs = sorted(by_phase[key], key=lambda r: r["node"])
        phase, minute = key
        label = {"baseline": "baseline (no clients)", "run": f"minute {minute}",
                 "end": "clients gone +0 s", "after": f"clients gone +{minute} s"}[phase]
        print(f"| {label} | {rs[0]['load1']} | {cells(rs, 'rss_kib', lambda v: f'{v / 1024:.1f}')} | "
              f"{cells(rs, 'fds')} | {cells(rs, 'threads')} | {cells(rs, 'tasks')} | {cells(rs, 'sessions')} | "
              f"{cells(rs, 'sockets')} | {cells(rs, 'rooms')} | {cells(rs, 'deadlines')} |")
    print()

    gens = results(folder)
    failures = []
    if gens:
        print("| generator | sessions | ops sent | acked | unacked | bad acks | deliveries | churn closes | reconnects | errors (conn / open) | ack p50 / p99 / max ms |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, g in gens:
            lat = g.get("ack_latency", {})
            ms = lambda k: f"{lat[k] / 1000:.1f}" if k in lat else "—"
            if g.get("scenario") == "soak-polling":
                churn = sum(g["closed"])
                reconnects = sum(g["opened"]) - g["slots"]
                errs = f"— / {g['open_errors']}"
                sessions = g["slots"]
            else:
                churn = g["churn_graceful"] + g["churn_abrupt"]
                reconnects = g["opened"] - g["connections"]
                errs = f"{g['connection_errors']} / {g['open_errors']}"
                sessions = g["connections"]
            print(f"| {name} | {sessions} | {g['sent']} | {g['acked']} | {g['unacked']} | {g['bad_acks']} | "
                  f"{g['delivered']} | {churn} | {reconnects} | {errs} | {ms('p50_us')} / {ms('p99_us')} / {ms('max_us')} |")
            if g["unacked"] or g["bad_acks"]:
                failures.append(f"{name}: {g['unacked']} unacked, {g['bad_acks']} bad acks")
            if g.get("first_error"):
                print(f"\n{name} first error: {g['first_error']}")
        print()
    else:
        failures.append("no generator RESULT lines")

    window_min = env_num("SOAK_RSS_WINDOW_MIN", 20)
    tol_pct = env_num("SOAK_RSS_TOLERANCE_PCT", 2)
    tol_mib = env_num("SOAK_RSS_TOLERANCE_MIB", 4)
    task_slack = env_num("SOAK_TASK_SLACK", 2)
    fd_slack = env_num("SOAK_FD_SLACK", 2)
    run_rows = [r for r in rows if r["phase"] == "run"]
    last = max((r["minute"] for r in run_rows), default=0)
    window = max(1, min(window_min, int(last * 2 / 3)))
    first = last - window
    print("### Verdict\n")
    for n in nodes:
        pts = [(r["minute"], r["rss_kib"]) for r in run_rows if r["node"] == n and r["minute"] >= first]
        s = slope(pts)  # KiB per minute
        growth = s * window / 1024
        mean = sum(y for _, y in pts) / max(1, len(pts)) / 1024
        spread = (max(y for _, y in pts) - min(y for _, y in pts)) / 1024 if pts else 0
        tol = max(tol_pct / 100 * mean, tol_mib)
        ok = growth <= tol
        print(f"- node {n} memory: RSS slope over minutes {first}–{last} {s:+.1f} KiB/min = {growth:+.2f} MiB over "
              f"{window} min (mean {mean:.1f} MiB, spread {spread:.1f} MiB); tolerance {tol:.2f} MiB: "
              f"{'pass' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"node {n} RSS grows {growth:.2f} MiB over {window} min")
        base = next((r for r in rows if r["phase"] == "baseline" and r["node"] == n), None)
        after = next((r for r in rows if r["phase"] == "after" and r["node"] == n), None)
        if not base or not after:
            failures.append(f"node {n}: no baseline or after reading")
            continue
        for key, slack, what in (("fds", fd_slack, "open fds"), ("tasks", task_slack, "tokio tasks")):
            b, a = base[key], after[key]
            ok = a is not None and b is not None and a <= b + slack
            print(f"- node {n} {what}: baseline {b}, after the clients left {a} (slack {slack:.0f}): "
                  f"{'pass' if ok else 'FAIL'}")
            if not ok:
                failures.append(f"node {n} {what} {b} -> {a}")
        left = {k: after[k] for k in ("sessions", "sockets", "rooms", "deadlines")}
        ok = all(v == 0 for v in left.values())
        print(f"- node {n} drained: " + ", ".join(f"{k} {v}" for k, v in left.items()) +
              f": {'pass' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"node {n} not drained: {left}")
        peak = max((r["threads"] for r in rows if r["node"] == n), default=0)
        print(f"- node {n} threads: baseline {base['threads']}, peak {peak}, after {after['threads']} (reported, not judged)")
    print()
    if failures:
        print("**VERDICT: FAIL** — " + "; ".join(failures))
        sys.exit(1)
    print("**VERDICT: PASS** — memory flat, fds and tasks back to baseline, tables drained, every ack came.")


if __name__ == "__main__":
    main()
