"""The rule every `make bench` ratio against a reference follows, in one place.

A ratio is measured in rounds. Each round times both sides, one after the other, in an order that alternates
from round to round, with each side's warm-ups already discarded; the round's ratio is ours / theirs. Rounds go
on (up to a bound) until the spread of the ratios is small. The spread is their coefficient of variation
(standard deviation / mean), printed on the line before the RESULT. A ratio whose spread stays over 10 % is
not a result: it is printed as `RESULT <key>=unstable` instead of a number.

    from bench_ratio import measure_rounds, result_line
    ratios = measure_rounds(one_round, min_rounds=3, max_rounds=8)   # one_round(r) -> {key: ratio}
    for key, values in ratios.items():
        print(result_line(key, values))
"""
import statistics
import sys

MAX_SPREAD = 0.10


def spread(values):
    """The coefficient of variation of `values` (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else float("inf")


def stable(values, limit=MAX_SPREAD):
    return len(values) >= 2 and spread(values) <= limit


def measure_rounds(one_round, min_rounds=3, max_rounds=8, limit=MAX_SPREAD, log=sys.stderr):
    """Calls one_round(r) for r = 0, 1, ... (it must alternate its sides' order with r) and collects the ratios
    it returns, {key: ratio}, until every key's spread is at most `limit` after `min_rounds`, or `max_rounds`."""
    ratios = {}
    for r in range(max_rounds):
        for key, value in one_round(r).items():
            ratios.setdefault(key, []).append(value)
        summary = ", ".join(f"{k} {v[-1]:.3f} (spread {spread(v) * 100:.1f} %)" for k, v in ratios.items())
        print(f"round {r + 1}: {summary}", file=log, flush=True)
        if r + 1 >= min_rounds and all(stable(v, limit) for v in ratios.values()):
            break
    return ratios


def result_line(key, values, digits=3, limit=MAX_SPREAD, what="rounds"):
    """Two lines: the ratios' spread, then `RESULT key=<median>`, or `RESULT key=unstable` when the spread is
    over the limit; `values` are the ratios of `what` (rounds, calls)."""
    s = spread(values)
    listed = ", ".join(f"{v:.{digits}f}" for v in values[:12]) + (", ..." if len(values) > 12 else "")
    head = f"{key}: spread {s * 100:.2f} % over {len(values)} {what} ({listed})"
    if s > limit:
        return f"{head}: over {limit * 100:.0f} %, not a result\nRESULT {key}=unstable"
    return f"{head}\nRESULT {key}={statistics.median(values):.{digits}f}"
