#!/usr/bin/env python3
"""Render a bench/results/<date>.json file (written by bench/run.sh) as a Markdown table.

Usage: bench/table.py bench/results/<date>.json
"""
import json
import sys

NAMES = {"node": "Node socket.io 4.8", "socketioxide": "socketioxide 0.18", "hub": "socketio-hub"}


def ms(us):
    return "–" if us is None else f"{us / 1000:.2f}"


def pick(results, scenario, server, mode=None):
    for r in results:
        if r.get("scenario") == scenario and r.get("server") == server and (mode is None or r.get("mode") == mode):
            return r
    return None


def cell(r, fmt):
    if r is None:
        return "not run"
    if "error" in r:
        return "failed: " + r["error"][:80].replace("|", "/")
    try:
        return fmt(r)
    except (KeyError, TypeError):
        return "n/a"


def lat(r):
    l = r["latency"]
    text = f"{ms(l.get('p50_us'))} / {ms(l.get('p99_us'))} / {ms(l.get('p999_us'))} / {ms(l.get('max_us'))}"
    problems = [f"{r[k]} {k.replace('_', ' ')}" for k in ("unacked", "bad_acks", "connection_errors") if r.get(k)]
    return text + (f" ({', '.join(problems)})" if problems else "")


def main():
    doc = json.load(open(sys.argv[1]))
    results = doc["results"]
    servers = [s for s in doc["servers"]]
    s = doc["settings"]
    rows = [
        (f"idle RSS per connection, KiB ({s['idle_connections']} connections)", "idle", None,
         lambda r: f"{r['server_rss_per_conn_kib']:.2f}" + ("" if r["still_open"] == r["connections"] else f" (only {r['still_open']} open)")),
        (f"fan-out deliveries/s (room of {s['fanout_receivers']}, {s['fanout_broadcasts']} broadcasts)", "fanout", None,
         lambda r: f"{r['deliveries_per_sec']:,.0f}" + ("" if r["delivered"] == r["expected"] else f" ({r['delivered']}/{r['expected']} delivered)")),
        ("fan-out delivery latency p50 / p99 / p99.9 / max, ms", "fanout", None, lat),
        ("fan-out: generator CPU, % of its core", "fanout", None, lambda r: f"{r['generator_cpu_pct']:.0f}"),
        (f"handshakes/s (open + namespace connect, {s['handshake_concurrency']} in flight)", "handshake", None,
         lambda r: f"{r['handshakes_per_sec']:,.0f}" + (f" ({r['failed']} failed)" if r["failed"] else "")),
        ("server CPU per handshake, µs", "handshake", None, lambda r: f"{r['server_cpu_us_per_handshake']:.0f}"),
        ("handshakes: generator CPU, % of its core", "handshake", None, lambda r: f"{r['generator_cpu_pct']:.0f}"),
        (f"echo with ack (app code), {s['echo_rate']:.0f}/s from {s['echo_clients']} clients: p50 / p99 / p99.9 / max, ms", "echo", "echo", lat),
        ("echo with ack (app code): server CPU per echo, µs", "echo", "echo", lambda r: f"{r['server_cpu_us_per_echo']:.1f}" + (f" (+ app {r['app_cpu_us_per_echo']:.1f})" if r.get("app_cpu_us_per_echo") is not None else "")),
        (f"hub:to ack round trip (no app code), {s['echo_rate']:.0f}/s: p50 / p99 / p99.9 / max, ms", "echo", "hub-to", lat),
        ("hub:to ack round trip: server CPU per message, µs", "echo", "hub-to", lambda r: f"{r['server_cpu_us_per_echo']:.1f}"),
    ]
    print("| figure | " + " | ".join(NAMES.get(x, x) for x in servers) + " |")
    print("|---|" + "---|" * len(servers))
    for title, scenario, mode, fmt in rows:
        print(f"| {title} | " + " | ".join(cell(pick(results, scenario, x, mode), fmt) for x in servers) + " |")
    notes = [r for r in results if r.get("server") == "hub" and r.get("scenario") == "echo" and r.get("mode") == "echo"]
    if notes:
        print("\nsocketio-hub's app-code echo goes through its serverless webhook (HTTP POST to `loadgen webhook-echo`).")


if __name__ == "__main__":
    main()
