"""wstest fuzzingserver (Python 2.7), minus one check that cannot hold
behind a reverse proxy.

Autobahn's server compares the port in the Host header with its own
listening port and refuses the handshake when they differ. wsgate forwards
the client's Host untouched (as DESIGN.md requires), so a client that dialed
the gateway names the gateway's port. This launcher clears the factory's
`externalPort` after construction, which turns only that comparison off;
everything else is the stock fuzzingserver.

Usage: python fuzzingserver.py SPEC_JSON
"""

import sys

from autobahntestsuite import fuzzing
from autobahntestsuite.wstest import run

_init = fuzzing.FuzzingServerFactory.__init__


def _init_without_port_check(self, spec, debug=False):
    _init(self, spec, debug)
    self.externalPort = None


fuzzing.FuzzingServerFactory.__init__ = _init_without_port_check

if __name__ == "__main__":
    sys.argv = ["wstest", "-m", "fuzzingserver", "--webport", "0", "-s", sys.argv[1]]
    sys.exit(run())
