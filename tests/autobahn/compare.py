"""Compares Autobahn verdicts through wsgate with the same peer direct.

Usage: python3 compare.py INDEX_JSON...   (wstest's reports/*/index.json)

Every agent named NAME-via-wsgate is compared, case by case, with the agent
NAME: the case's `behavior` and `behaviorClose` must be equal. A peer's own
failures (the same verdict direct) are not differences. Prints a summary per
pair and every differing case; exits 1 on any difference or missing case.

Two differences follow from rules DESIGN.md sets for the gateway. They are
matched narrowly (verdicts *and* close codes), printed as "by design", and
only fail the run with --strict:

- fail-fast: the client sends a valid message then a broken frame. Direct,
  the peer echoes the message, then fails (OK). Through wsgate, the gateway
  fails the connection at once with 1002 to both sides, so the echo the
  backend sends afterwards is not relayed (NON-STRICT; same close verdict).
- backend-drop: the peer fails by dropping TCP without a close frame (e.g.
  tungstenite on invalid UTF-8). Direct that is "no close code" (OK);
  through wsgate the client gets close 1011 "backend went away" (WRONG CODE).
"""

import json
import os
import sys

SUFFIX = "-via-wsgate"


def load(paths):
    agents, bases = {}, {}
    for path in paths:
        with open(path) as f:
            index = json.load(f)
        agents.update(index)
        bases.update((agent, os.path.dirname(path)) for agent in index)
    return agents, bases


def verdict(result):
    return (result.get("behavior"), result.get("behaviorClose"))


def details(result, base):
    with open(os.path.join(base, result["reportfile"])) as f:
        report = json.load(f)
    return report.get("remoteCloseCode"), report.get("wasClean")


def by_design(d, v, base):
    """The DESIGN.md rule explaining a difference, or None."""
    (dcode, dclean), (vcode, _) = details(d, base), details(v, base)
    (db, dc), (vb, vc) = verdict(d), verdict(v)
    if (db, vb) == ("OK", "NON-STRICT") and dc == vc and vcode == 1002:
        return "fail-fast"
    if db == vb and (dc, vc) == ("OK", "WRONG CODE") and dcode is None \
            and not dclean and vcode == 1011:
        return "backend-drop"
    return None


def compare(name, direct, via, base):
    differences, designed = [], []
    for case in sorted(set(direct) | set(via), key=case_key):
        d, v = direct.get(case), via.get(case)
        if d is None or v is None:
            differences.append((case, d and verdict(d), v and verdict(v)))
        elif verdict(d) != verdict(v):
            rule = by_design(d, v, base)
            entry = (case, verdict(d), verdict(v))
            (designed if rule else differences).append(entry + (rule,))
    failing = sum(1 for r in direct.values() if verdict(r)[0] == "FAILED")
    print("%-24s %4d cases: %d differing, %d by design (peer's own FAILED: %d)"
          % (name, len(via), len(differences), len(designed), failing))
    for entry in differences:
        print("  DIFF   case %-8s direct %-26s via wsgate %s" % entry[:3])
    for entry in designed:
        print("  design case %-8s direct %-26s via wsgate %s [%s]" % entry)
    return differences, designed


def case_key(case):
    return [int(part) for part in case.split(".")]


def main(args):
    strict = "--strict" in args
    agents, bases = load([a for a in args if a != "--strict"])
    pairs = [(a[: -len(SUFFIX)], a) for a in agents if a.endswith(SUFFIX)]
    if not pairs:
        print("no NAME-via-wsgate agents in the reports")
        return 1
    total, designed, cases = 0, 0, 0
    for name, via in sorted(pairs):
        if name not in agents:
            print("%s has no direct run to compare with" % via)
            total += 1
            continue
        diff, design = compare(name, agents[name], agents[via], bases[via])
        total, designed, cases = total + len(diff), designed + len(design), cases + len(agents[via])
    print("autobahn: %d cases through wsgate, %d difference(s), %d by design"
          % (cases, total, designed))
    return 1 if total or (strict and designed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
