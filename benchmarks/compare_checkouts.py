"""Time two checkouts of gradcam side by side with ``benchmarks/compare_peers.py``.

Each round runs ``compare_peers.py`` once per checkout, each in a fresh process with that
checkout first on ``sys.path``, alternating which goes first, and reads the text table's
``time (ratio to the floor)`` cells. The floor is timed in the same process and round as
ours, so the ratios are what to compare: load from other processes hits both sides of a
ratio alike. Printed per row: each round's ratio for each checkout, and the medians.

Example (a quick look at MobileNetV2, the floor and ours only)::

    git worktree add /tmp/base <commit>
    python benchmarks/compare_checkouts.py /tmp/base . --rounds 3 -- \\
        --quick --skip-peers --skip-memory --skip-cold --repeats 5
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

CELL = re.compile(r"([0-9.]+) ms \(([0-9.]+)x\)")


def run(checkout: str, args: list[str]) -> dict[str, tuple[float, float]]:
    """One run of the checkout's ``compare_peers.py``: ``{row label: (ms, ratio)}`` of the
    first model's column."""
    checkout = os.path.abspath(checkout)
    env = dict(os.environ, PYTHONPATH=checkout, KERAS_BACKEND="tensorflow")
    done = subprocess.run([sys.executable, os.path.join(checkout, "benchmarks", "compare_peers.py"), *args],
                          capture_output=True, text=True, env=env, cwd=checkout)
    if done.returncode != 0:
        raise RuntimeError(f"compare_peers.py in {checkout} failed:\n{done.stderr[-3000:]}")
    rows = {}
    for line in done.stdout.splitlines():
        label, _, rest = line.partition(" | ")
        match = CELL.search(rest)
        if match:
            rows[label.strip()] = (float(match.group(1)), float(match.group(2)))
    if not rows:
        raise RuntimeError(f"no table in the output of {checkout}:\n{done.stdout[-3000:]}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the checkout to compare with (e.g. a worktree of main)")
    parser.add_argument("head", help="the checkout under test")
    parser.add_argument("--rounds", type=int, default=3, help="runs per checkout, alternated. Default 3.")
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    peers_args = argv[split + 1:]  # after --: compare_peers.py's arguments
    results = {"base": [], "head": []}
    for round_ in range(args.rounds):
        order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
        for side in order:
            results[side].append(run(getattr(args, side), peers_args))
            print(f"round {round_ + 1}, {side} done", file=sys.stderr, flush=True)
    labels = [label for label in results["base"][0] if label in results["head"][0]]
    width = max(map(len, labels))
    print(f"{'row':<{width}} | base ratios (ms)              | head ratios (ms)              | "
          "median base -> head")
    for label in labels:
        cells = {}
        for side in ("base", "head"):
            cells[side] = ", ".join(f"{r[label][1]:.2f}x ({r[label][0]:.1f})" for r in results[side])
        base = statistics.median(r[label][1] for r in results["base"])
        head = statistics.median(r[label][1] for r in results["head"])
        print(f"{label:<{width}} | {cells['base']:<29} | {cells['head']:<29} | {base:.2f}x -> {head:.2f}x")


if __name__ == "__main__":
    main()
