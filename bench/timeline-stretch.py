#!/usr/bin/env python3
"""How far guest timelines stretched in runs of the suite: for each run
directory, every `wait:` step's lateness (its duration past the wait) and
every workload op's duration as a share of its deadline (but those of
workloads a `hang:` expectation expects to hang), over all cases.
A starved guest shows in both long before an op misses its deadline.

    python3 bench/timeline-stretch.py target/bench/suite-jobs/j6-c1-r1 ...

Needs python3-yaml. Scenario files are read relative to the working
directory, as the journal names them."""
import json
import re
import sys

import yaml

UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0}


def seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", str(text).strip())
    return float(m.group(1)) * UNITS[m.group(2)]


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def run(dir_):
    journal = json.load(open(f"{dir_}/journal.json"))
    late, shares, verdicts = [], [], {}
    for r in journal["results"]:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        scenario = yaml.safe_load(open(r["file"]))
        waits = {s["id"]: seconds(s["wait"]) for s in scenario.get("steps", []) if "wait" in s}
        # Workloads meant to hang (a `hang:` expectation) are the scenario's
        # subject, not a measure of the guest's share.
        hanging = {e["hang"]["workload"] for e in scenario.get("expect", []) if "hang" in e}
        deadlines = {
            w["id"]: seconds(w.get("deadline", "5s"))
            for w in scenario.get("workloads", [])
            if w["id"] not in hanging
        }
        begun = {}
        for e in r["journal"]["events"]:
            kind = e["event"]
            if kind == "step_begin":
                begun[e["step"]] = e["t_ns"]
            elif kind == "step_end" and e["step"] in waits and e["step"] in begun:
                late.append((e["t_ns"] - begun[e["step"]]) / 1e9 - waits[e["step"]])
            elif kind == "op" and e["workload"] in deadlines:
                shares.append((e["end_ns"] - e["start_ns"]) / 1e9 / deadlines[e["workload"]])
    return late, shares, verdicts


print("run waits late_p50_ms late_p99_ms late_max_ms ops share_p99 share_max over_half verdicts")
for d in sys.argv[1:]:
    late, shares, verdicts = run(d)
    ms = [x * 1000 for x in late]
    print(
        f"{d} {len(ms)} {pct(ms, 50):.0f} {pct(ms, 99):.0f} {max(ms, default=0):.0f} "
        f"{len(shares)} {pct(shares, 99):.3f} {max(shares, default=0):.3f} "
        f"{sum(s > 0.5 for s in shares)} "
        + ",".join(f"{k}={v}" for k, v in sorted(verdicts.items()))
    )
