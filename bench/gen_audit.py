#!/usr/bin/env python3
"""Writes an audit log of a hub with N peers, as wgfleet apply writes it (deterministic).

  gen_audit.py new PEERS DAYS CHANGES_PER_DAY > audit.jsonl
  gen_audit.py old PEERS DAYS RUNS_PER_DAY   > audit.jsonl

`new`: the format of this version: a snapshot of every peer when wgfleet first manages the
interface, then one entry per change (a client added or removed, with its owner); the timer's
runs that change nothing append nothing (tests/apply_testbed.rs proves that on the testbed).
`old`: the format before it: every run, changed or not, appended the interface's whole peer list.
"""
import json
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
DIGEST = "sha256:" + "ab" * 32


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def peer(i):
    return {"name": f"client-{i}", "owner": f"user-{i % 500}@example.com"}


def entry(t, action, changes, **peers):
    e = {"time": stamp(t), "host": "hub", "fleetDigest": DIGEST, "network": "wg0",
         "action": action, "changes": changes, "result": "ok"}
    e.update(peers)
    return json.dumps(e, separators=(",", ":"))


def new(n, days, per_day):
    out = sys.stdout
    out.write(entry(START, "start", [{"change": "file-missing"}],
                    peers=[peer(i) for i in range(n)]) + "\n")
    next_id = n
    oldest = 0
    for day in range(days):
        for k in range(per_day):
            t = START + timedelta(days=day, hours=8 + k)
            if k % 2 == 0:  # a client joins
                p = peer(next_id)
                next_id += 1
                change = {"change": "peer-added", "peer": p["name"],
                          "publicKey": "A" * 43 + "=", "allowedIps": ["10.0.0.1/32"]}
                out.write(entry(t, "reload", [change], added=[p]) + "\n")
            else:  # the oldest leaves
                p = peer(oldest)
                oldest += 1
                change = {"change": "peer-removed", "peer": p["name"], "publicKey": "A" * 43 + "="}
                out.write(entry(t, "reload", [change], removed=[p]) + "\n")


def old(n, days, runs):
    out = sys.stdout
    peers = [peer(i) for i in range(n)]
    for day in range(days):
        for r in range(runs):
            t = START + timedelta(days=day, seconds=r * 86400 // runs)
            out.write(entry(t, "nothing", [], peers=peers) + "\n")


if __name__ == "__main__":
    kind, n, days, k = sys.argv[1], *map(int, sys.argv[2:5])
    {"new": new, "old": old}[kind](n, days, k)
