"""Compares Autobahn verdicts through wsgate with the same peer direct.

Usage: python3 compare.py INDEX_JSON...   (wstest's reports/*/index.json)

Every agent named NAME-via-wsgate is compared, case by case, with the agent
NAME: the case's `behavior` and `behaviorClose` must be equal. A peer's own
failures (the same verdict direct) are not differences. Prints a summary per
pair and every differing case; exits 1 on any difference or missing case.

Two kinds of difference are explained, matched narrowly (verdicts *and*
close codes), printed but not failing the run unless --strict is given:

- stricter: through wsgate the case is OK where the peer alone is
  NON-STRICT, with the same close verdict. The gateway checks the protocol
  itself (UTF-8, frame rules) and fails the connection sooner than a lenient
  peer does, e.g. Python websockets on invalid UTF-8 in a fragment (6.4.*).
- backend-close-race: the client sends a message and then a broken frame.
  The gateway forwards the message and closes the backend with 1002 right
  behind it. Python websockets answers a close that arrives with a message
  without echoing the message (tests/autobahn/close_race.py shows it with no
  gateway at all), so the verdict is NON-STRICT; direct it echoes first.
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
    return report.get("wasClean"), report.get("remoteCloseCode")


def explain(d, v, base):
    """The explanation of a difference (see the module doc), or None."""
    (_, vcode) = details(v, base)
    (db, dc), (vb, vc) = verdict(d), verdict(v)
    if (db, vb) == ("NON-STRICT", "OK") and dc == vc:
        return "stricter"
    if (db, vb) == ("OK", "NON-STRICT") and dc == vc and vcode == 1002:
        return "backend-close-race"
    return None


def compare(name, direct, via, base):
    differences, explained = [], []
    for case in sorted(set(direct) | set(via), key=case_key):
        d, v = direct.get(case), via.get(case)
        if d is None or v is None:
            differences.append((case, d and verdict(d), v and verdict(v)))
        elif verdict(d) != verdict(v):
            rule = explain(d, v, base)
            entry = (case, verdict(d), verdict(v))
            (explained if rule else differences).append(entry + (rule,))
    failing = sum(1 for r in direct.values() if verdict(r)[0] == "FAILED")
    print("%-24s %4d cases: %d differing, %d explained (peer's own FAILED: %d)"
          % (name, len(via), len(differences), len(explained), failing))
    for entry in differences:
        print("  DIFF   case %-8s direct %-26s via wsgate %s" % entry[:3])
    for entry in explained:
        print("  explained %-8s direct %-26s via wsgate %s [%s]" % entry)
    return differences, explained


def case_key(case):
    return [int(part) for part in case.split(".")]


def main(args):
    strict = "--strict" in args
    agents, bases = load([a for a in args if a != "--strict"])
    pairs = [(a[: -len(SUFFIX)], a) for a in agents if a.endswith(SUFFIX)]
    if not pairs:
        print("no NAME-via-wsgate agents in the reports")
        return 1
    total, explained, cases = 0, 0, 0
    for name, via in sorted(pairs):
        if name not in agents:
            print("%s has no direct run to compare with" % via)
            total += 1
            continue
        diff, why = compare(name, agents[name], agents[via], bases[via])
        total, explained, cases = total + len(diff), explained + len(why), cases + len(agents[via])
    print("autobahn: %d cases through wsgate, %d difference(s), %d explained"
          % (cases, total, explained))
    return 1 if total or (strict and explained) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
