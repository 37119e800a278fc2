"""The mkt-desktop command line, killed with SIGKILL at a chosen step: a deterministic kill -9.

    python tests/faults/killer.py commit 3 index ~/Pictures --db lib.sqlite

dies right after its 3rd database commit ("append": its 3rd embedding-store append; "replace": its 3rd
os.replace, the last step of every atomic file write). Fewer steps than that: it exits as usual. The
steps are counted from outside the code under test, so every boundary between two writes can be hit.
"""

import os
import signal
import sys


def _kill_after(owner, name: str, steps: int) -> None:
    real = getattr(owner, name)
    done = 0

    def step(*args, **kwargs):
        nonlocal done
        result = real(*args, **kwargs)
        done += 1
        if done == steps:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, step)


def main() -> int:
    what, steps, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if what == "commit":
        from sqlalchemy.orm import Session

        _kill_after(Session, "commit", steps)
    elif what == "append":
        from mkt_core.store import EmbeddingStore

        _kill_after(EmbeddingStore, "append_codes", steps)
    elif what == "replace":
        _kill_after(os, "replace", steps)
    else:
        raise SystemExit(f"killer: unknown step {what!r}")
    from mkt_desktop.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
