"""Compares Autobahn verdicts through wsgate with the same peer direct.

Usage: python3 compare.py --expect NAME[,NAME...] [--known FILE] INDEX_JSON...
       (INDEX_JSON: wstest's reports/*/index.json)

Every agent NAME given to --expect must have run twice: as NAME (direct)
and as NAME-via-wsgate, over the same cases. A missing agent, a run with
no cases, or runs whose case sets differ fail the comparison, so it can
never pass without having compared anything. An agent name that appears in
two reports fails too (one would hide the other).

A case passes when its `behavior` and `behaviorClose` are equal both ways:
a peer's own failures (the same verdict direct) are not differences. A case
that differs passes only if the known-differences file (default:
known-differences.json beside this script) lists it for that agent with
this pair of verdicts (direct, via wsgate) among its accepted pairs, and a
reason, or if it is better through wsgate (NON-STRICT direct, OK through
wsgate, same close verdict: see better_through_wsgate). Anything else fails;
a worse verdict through wsgate must always be listed. A listed case that
came out equal is reported, not failed: the listed kinds depend on the
peer's timing.
"""

import argparse
import json
import os
import sys

SUFFIX = "-via-wsgate"
HERE = os.path.dirname(os.path.abspath(__file__))


def load(paths):
    """Every agent's results by case, from all reports; fails on clashes."""
    agents, problems = {}, []
    for path in paths:
        with open(path) as f:
            index = json.load(f)
        for agent, results in index.items():
            if agent in agents:
                problems.append("agent %s appears in two reports" % agent)
            agents[agent] = results
    return agents, problems


def verdict(result):
    return [result.get("behavior"), result.get("behaviorClose")]


def case_key(case):
    return [int(part) for part in case.split(".")]


def check_runs(name, agents):
    """Why the two runs of `name` cannot be compared, or None."""
    direct, via = agents.get(name), agents.get(name + SUFFIX)
    if direct is None or via is None:
        missing = [a for a in (name, name + SUFFIX) if a not in agents]
        return "missing agent run(s): %s" % ", ".join(missing)
    if not direct:
        return "no cases ran"
    if set(direct) != set(via):
        only_d = sorted(set(direct) - set(via), key=case_key)
        only_v = sorted(set(via) - set(direct), key=case_key)
        return "case counts differ: %d direct, %d via wsgate (only direct: %s; only via: %s)" % (
            len(direct), len(via), " ".join(only_d) or "-", " ".join(only_v) or "-")
    return None


def better_through_wsgate(d, v):
    """The peer alone was NON-STRICT and through wsgate it is OK, with the
    same close verdict: the gateway, which checks the protocol itself and
    fails the connection as soon as a frame breaks it, did better than the
    peer. Never a gateway defect, and it depends on the peer's timing (how
    much a single read hands it), so it is not listed case by case."""
    (db, dc), (vb, vc) = verdict(d), verdict(v)
    return (db, vb) == ("NON-STRICT", "OK") and dc == vc


def accepted(case, d, v, known):
    """The reason a difference is accepted, or None: a better verdict
    through wsgate, or the case listed with this exact pair of verdicts
    among its accepted ones."""
    entry = known.get(case, {})
    pair = {"direct": verdict(d), "via": verdict(v)}
    if pair in entry.get("accept", []):
        return entry["reason"]
    if better_through_wsgate(d, v):
        return "better through wsgate: NON-STRICT alone, OK behind the gateway's fail-fast"
    return None


def compare(name, agents, known):
    """Prints the pair's summary and cases; returns the failing lines."""
    problem = check_runs(name, agents)
    if problem:
        print("%-26s FAIL: %s" % (name, problem))
        return [problem]
    direct, via = agents[name], agents[name + SUFFIX]
    failures, explained = [], []
    for case in sorted(direct, key=case_key):
        d, v = direct[case], via[case]
        if verdict(d) == verdict(v):
            continue
        reason = accepted(case, d, v, known)
        line = "case %-8s direct %-26s via wsgate %s" % (case, verdict(d), verdict(v))
        (explained if reason else failures).append(line + (" [%s]" % reason if reason else ""))
    unseen = sorted(set(known) - {c for c in direct if verdict(direct[c]) != verdict(via[c])},
                    key=case_key)
    own = sum(1 for r in direct.values() if r.get("behavior") == "FAILED")
    print("%-26s %4d cases: %d differing, %d known (peer's own FAILED: %d)"
          % (name, len(via), len(failures), len(explained), own))
    for line in failures:
        print("  DIFF  " + line)
    for line in explained:
        print("  known " + line)
    if unseen:
        print("  listed but equal this run: " + " ".join(unseen))
    return failures


def parse(args):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--expect", required=True,
                   help="comma-separated agents that must have run direct and via wsgate")
    p.add_argument("--known", default=os.path.join(HERE, "known-differences.json"))
    p.add_argument("reports", nargs="+")
    return p.parse_args(args)


def main(args):
    opts = parse(args)
    expected = [n for n in opts.expect.split(",") if n]
    if not expected:
        print("FAIL: --expect names no agent")
        return 1
    with open(opts.known) as f:
        known = {agent: cases for agent, cases in json.load(f).items()
                 if not agent.startswith("_")}
    agents, failures = load(opts.reports)
    for problem in failures:
        print("FAIL: " + problem)
    unexpected = sorted(a for a in agents if a.endswith(SUFFIX) and a[: -len(SUFFIX)] not in expected)
    for via in unexpected:
        failures.append("unexpected agent %s" % via)
        print("FAIL: %s ran but was not expected" % via)
    cases = 0
    for name in expected:
        failures += compare(name, agents, known.get(name, {}))
        cases += len(agents.get(name + SUFFIX, {}))
    print("autobahn: %d agents, %d cases through wsgate, %d failure(s)"
          % (len(expected), cases, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
