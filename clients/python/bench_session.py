"""How much a cached ``session()`` costs next to a round trip to the daemon.

    python3 clients/python/bench_session.py [--socket PATH] [--broker jainam] [-n 20000]

Both are measured in the same run against the same daemon: the cached call
through a client whose subscription is up, the uncached one as the same
client's ``session()`` with the cache bypassed (every call asks the daemon
over a pooled connection, as a cache miss does). Run it against the demo
(``cargo run --release --bin brokerd-demo -- --config config/demo.toml``; the
socket is then ``target/brokerd-demo/run/brokerd.sock``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from brokerd_client import Client  # noqa: E402


def measure(call: Callable[[], object], n: int) -> List[float]:
    """Per-call seconds of ``n`` calls (after a warm-up)."""
    for _ in range(min(n // 10, 1000)):
        call()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t = clock()
        call()
        out.append(clock() - t)
    return out


def row(name: str, samples: List[float]) -> str:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[int(len(samples) * 0.99)] * 1e6
    mean = statistics.fmean(samples) * 1e6
    return f"| {name} | {p50:.2f} | {p99:.2f} | {mean:.2f} | {1e6 / mean:,.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=None, help="default: $BROKERD_SOCKET or /run/brokerd/brokerd.sock")
    ap.add_argument("--broker", default="jainam")
    ap.add_argument("-n", type=int, default=20000, help="calls per row")
    args = ap.parse_args()

    c = Client(socket=args.socket)
    c.session(args.broker)
    deadline = time.monotonic() + 5
    while not c.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    if not c.subscribed:
        sys.exit("the subscription did not come up; is the daemon running?")
    c.session(args.broker)

    cached = measure(lambda: c.session(args.broker), args.n)
    # A cache miss: what session() does when the cache cannot answer (the
    # token request over a pooled connection, and the reply parsed).
    uncached_client = Client(socket=args.socket)
    key = (args.broker, None, "interactive")
    uncached = measure(lambda: uncached_client._fetch(key, 30, 10), args.n)

    print(f"python {sys.version.split()[0]}, {args.n} calls per row, broker {args.broker}")
    print("| call | p50 µs | p99 µs | mean µs | calls/s |")
    print("|---|---|---|---|---|")
    print(row("session(), cached", cached))
    print(row("session(), round trip", uncached))
    print(f"round trip / cached (p50): {statistics.median(uncached) / statistics.median(cached):.0f}x")
    c.close()
    uncached_client.close()


if __name__ == "__main__":
    main()
