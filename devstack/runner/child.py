"""Run a command in this very process, set to receive a signal when its parent dies.

    python -m devstack.runner.child [--signal TERM] [--user NAME] PROGRAM ARG...

`make run` starts supervisord through this, and supervisord starts every service through it, so
that nothing `make run` started outlives it even when it is SIGKILLed: Linux delivers the
parent-death signal (prctl PR_SET_PDEATHSIG), and `exec` keeps the pid, so the pid supervisord
reports is the service's own. `--user` switches to that user first (our PostgreSQL and
RabbitMQ run as their packages' users): before the signal is armed, because Linux clears it on
a change of user, and here rather than in supervisord, whose `user=` would run this module as a
user that may not reach our Python. Written by hand because it is one system call that no process
manager on PyPI sets for its children; `prctl` has no wrapper in the standard library.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pwd
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def become(user: str) -> None:
    account = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ.update(USER=user, LOGNAME=user)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.runner.child")
    parser.add_argument("--signal", default="KILL", help="signal name sent at the parent's death")
    parser.add_argument("--user", help="run the command as this user (we are root)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not args.command:
        parser.error("a command is required")
    parent = os.getppid()
    if args.user:
        become(args.user)
    die_with_parent(signal.Signals[f"SIG{args.signal}"])
    if os.getppid() != parent:  # the parent died before the signal was armed
        sys.exit(1)
    os.execvp(args.command[0], args.command)


if __name__ == "__main__":
    main()
