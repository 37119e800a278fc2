"""The mkt-desktop command line, killed with SIGKILL at a chosen step: a deterministic kill -9.

    python tests/faults/killer.py after-commit 3 index ~/Pictures --db lib.sqlite

dies right after its 3rd database commit. Steps: "after-commit", "after-append" (an embedding-store
append, durable, before the commit that refers to it) and "before-replace" (os.replace, the rename that
ends every atomic file write: the temporary file is written and not yet renamed). With fewer steps than
that it exits as usual. The steps are counted from outside the code under test, so every boundary
between two writes can be hit, and a test can walk through all of them.
"""

import os
import signal
import sys


def _kill_at(owner, name: str, steps: int, before: bool) -> None:
    real = getattr(owner, name)
    done = 0

    def step(*args, **kwargs):
        nonlocal done
        done += 1
        if before and done == steps:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if not before and done == steps:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, step)


def main() -> int:
    what, steps, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if what == "after-commit":
        from sqlalchemy.orm import Session

        _kill_at(Session, "commit", steps, before=False)
    elif what == "after-append":
        from mkt_core.runtime.store import EmbeddingStore

        _kill_at(EmbeddingStore, "append_codes", steps, before=False)
    elif what == "before-replace":
        _kill_at(os, "replace", steps, before=True)
    else:
        raise SystemExit(f"killer: unknown step {what!r}")
    from mkt_desktop.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
