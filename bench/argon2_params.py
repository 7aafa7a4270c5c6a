"""How long one argon2id verify takes on this machine, for the portal's parameters and a few alternatives.

    .venv/bin/python bench/argon2_params.py [--count 15]

The portal hashes with ``argon2.PasswordHasher()`` defaults (RFC 9106 low-memory profile: t=3, m=64 MiB,
p=4); a login's latency is about one verify plus a few milliseconds. The alternatives are the OWASP
Password Storage Cheat Sheet's argon2id settings and two middle grounds, for comparison only: changing the
portal's parameters is a security decision, and existing hashes keep their own parameters until rehashed.
Verifies run one at a time in this process (as ``verify_password`` does in a thread), median and p95 in ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher  # noqa: E402

from bench.auth_throughput import percentile  # noqa: E402

CANDIDATES = [
    ("portal now: PasswordHasher() defaults (RFC 9106 low-memory)", {}),
    ("t=2, m=64 MiB, p=4", {"time_cost": 2, "memory_cost": 65536, "parallelism": 4}),
    ("t=3, m=32 MiB, p=4", {"time_cost": 3, "memory_cost": 32768, "parallelism": 4}),
    ("OWASP: t=1, m=46 MiB, p=1", {"time_cost": 1, "memory_cost": 47104, "parallelism": 1}),
    ("OWASP: t=2, m=19 MiB, p=1", {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=15, help="verifies per parameter set (1..200)")
    args = parser.parse_args()
    if not 1 <= args.count <= 200:
        parser.error("--count must be between 1 and 200")
    password = "root-password-1"
    print(
        f"argon2id verify, {args.count} sequential verifies each, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(f"  {'parameters':<62}{'median ms':>10}{'p95 ms':>8}{'min ms':>8}")
    for label, params in CANDIDATES:
        hasher = PasswordHasher(**params)
        stored = hasher.hash(password)
        hasher.verify(stored, password)  # warm-up
        times = []
        for _ in range(args.count):
            started = time.perf_counter()
            hasher.verify(stored, password)
            times.append((time.perf_counter() - started) * 1000)
        print(f"  {label:<62}{statistics.median(times):>10.1f}{percentile(times, 95):>8.1f}{min(times):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
