#!/usr/bin/env python3
"""Deterministic synthetic fleets for the wgfleet benchmarks (stdlib only).

    python3 bench/gen_fleet.py mesh [N]   # N-host full mesh on wg0 (default 1000)
    python3 bench/gen_fleet.py hub  [N]   # one hub "hub" with N spokes (default 10000)

The fleet JSON (schema v1) goes to stdout. The same arguments and --seed always print the same
bytes. Public keys are 32 random bytes in base64 from a seeded RNG: wgfleet only checks that a key
decodes to 32 bytes, and the generator makes sure they are distinct. Private-key files are named
(secrets/<host>.age) but need not exist: neither validate nor render reads them.
"""

import argparse
import base64
import json
import random
import sys

# Documentation ranges (RFC 5737); past them, DNS names.
_DOC_NETS = ("198.51.100", "203.0.113", "192.0.2")


def endpoint(i: int) -> str:
    """A distinct endpoint for host index i: an IPv4 documentation address, then a DNS name."""
    net, host = divmod(i, 254)
    if net < len(_DOC_NETS):
        return f"{_DOC_NETS[net]}.{host + 1}"
    return f"node{i}.example.net"


class Keys:
    """Distinct fake WireGuard public keys from a seeded RNG."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seen = set()

    def next(self) -> str:
        while True:
            key = base64.b64encode(self.rng.getrandbits(256).to_bytes(32, "little")).decode()
            if key not in self.seen:
                self.seen.add(key)
                return key


def host(name: str, key: str, ep: str | None = None) -> dict:
    h = {"publicKey": key, "privateKeyFile": f"secrets/{name}.age"}
    if ep is not None:
        h["endpoint"] = ep
    return h


def check_subnet_fits(count: int, prefix_len: int) -> None:
    usable = (1 << (32 - prefix_len)) - 2
    if count > usable:
        sys.exit(f"gen_fleet: {count} members do not fit in a /{prefix_len} ({usable} addresses)")


def mesh(n: int, seed: int) -> dict:
    """n hosts h0..h{n-1}, every one with an endpoint, all in one full-mesh network."""
    check_subnet_fits(n, 16)
    keys = Keys(seed)
    hosts = {}
    members = {}
    for i in range(n):
        name = f"h{i}"
        hosts[name] = host(name, keys.next(), endpoint(i))
        members[name] = {"id": i}
    return {
        "version": 1,
        "hosts": hosts,
        "networks": {
            "wg0": {
                "subnet": "10.0.0.0/16",
                "listenPort": 51820,
                "persistentKeepalive": 25,
                "topology": "mesh",
                "members": members,
            }
        },
    }


def hub(n: int, seed: int, prefix_len: int | None = None) -> dict:
    """One hub (id 0, with an endpoint, forwarding) and n spokes s0..s{n-1} (ids 1..n) without
    endpoints: spokes dial the hub, the hub learns theirs from the handshake. The subnet is
    10.0.0.0/16 up to 65,533 spokes, 10.0.0.0/12 past that (the 100,000-peer benchmark), unless
    prefix_len says otherwise."""
    if prefix_len is None:
        prefix_len = 16 if n + 1 <= (1 << 16) - 2 else 12
    check_subnet_fits(n + 1, prefix_len)
    keys = Keys(seed)
    hosts = {"hub": host("hub", keys.next(), endpoint(0))}
    members = {"hub": {"id": 0, "forwarding": True}}
    for i in range(n):
        name = f"s{i}"
        hosts[name] = host(name, keys.next())
        members[name] = {"id": i + 1}
    return {
        "version": 1,
        "hosts": hosts,
        "networks": {
            "wg0": {
                "subnet": f"10.0.0.0/{prefix_len}",
                "listenPort": 51820,
                "persistentKeepalive": 25,
                "topology": {"hubAndSpoke": {"hubs": ["hub"]}},
                "members": members,
            }
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["mesh", "hub"])
    p.add_argument("n", nargs="?", type=int, help="hosts (mesh, default 1000) or spokes (hub, default 10000)")
    p.add_argument("--seed", type=int, default=1, help="RNG seed for the keys (default 1)")
    p.add_argument("--prefix-len", type=int, help="hub: the subnet 10.0.0.0/LEN (default 16, 12 past 65,533 spokes)")
    args = p.parse_args()
    if args.n is not None and args.n < 1:
        p.error("n must be at least 1")
    if args.kind == "mesh":
        fleet = mesh(args.n or 1000, args.seed)
    else:
        fleet = hub(args.n or 10000, args.seed, args.prefix_len)
    json.dump(fleet, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
