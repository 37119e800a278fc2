"""kill -9 of `index` at every step: nothing committed is lost, nothing is duplicated, and the run that
finally completes leaves the library a clean run leaves, to the same scores."""

import pytest

from mkt_desktop.library.library import Library
from tests.faults.helpers import KILLED, killed_cli, label_score_counts, photos, scores_by_path, sql


def _prepared(db, folder, bundle) -> Library:
    """A library with its vocabulary, model and folder saved: what is left to commit is the indexing itself."""
    lib = Library(db_path=db, model=bundle)
    lib.model_id  # noqa: B018 - saves the model's row
    lib.add_folder(folder)
    return lib


def _check(db, lib_of, total: int, bundle: str) -> None:
    """What must hold after any kill: a sound database, every committed photo in the store, every saved
    label scored for every committed photo."""
    assert sql(db, "PRAGMA integrity_check") == [("ok",)]
    lib = lib_of()
    committed = lib.photo_count()
    assert committed <= total
    stored = set(lib.store.ids.tolist())
    embedding_ids = {e for (e,) in sql(db, "SELECT id FROM embeddings")}
    assert embedding_ids <= stored
    assert set(label_score_counts(db, bundle).values()) <= {committed}


@pytest.mark.slow
def test_index_killed_at_every_step_then_rerun_gives_the_library_of_a_clean_run(tmp_path, tiny_bundle):
    folder = tmp_path / "photos"
    photos(folder, 24)  # two batches of 16
    clean_db = tmp_path / "clean" / "lib.sqlite"
    _prepared(clean_db, folder, tiny_bundle).index()
    clean = scores_by_path(clean_db, tiny_bundle)

    # Right after each store append (nothing of its batch committed yet) and after each commit.
    steps = [("after-append", n) for n in (1, 2)] + [("after-commit", n) for n in range(1, 20)]
    killed_at = []
    for step, count in steps:
        db = tmp_path / f"{step}-{count}" / "lib.sqlite"
        _prepared(db, folder, tiny_bundle)
        run = killed_cli(step, count, "index", "--db", str(db), "--model", tiny_bundle, "--json")
        if run.returncode != KILLED:
            assert run.returncode == 0, run.stderr
            if step == "after-commit":
                break  # the run has fewer commits than that: every one was hit
            continue
        killed_at.append((step, count))
        _check(db, lambda db=db: Library(db_path=db, model=tiny_bundle), 24, tiny_bundle)
        report = Library(db_path=db, model=tiny_bundle).index()
        assert report.failed == 0 and report.indexed + report.reused + report.unchanged == 24, (step, count)
        lib = Library(db_path=db, model=tiny_bundle)
        assert lib.photo_count() == 24 and len(lib.store) == 24, (step, count)
        assert sql(db, "SELECT count(*) FROM embeddings") == [(24,)]
        killed = scores_by_path(db, tiny_bundle)
        assert killed.keys() == clean.keys(), (step, count)
        worst = max(abs(killed[key] - clean[key]) for key in clean)
        assert worst < 1e-5, f"killed {step} {count}, then rerun: scores up to {worst} away from a clean run"
    assert ("after-append", 2) in killed_at and ("after-commit", 3) in killed_at, killed_at
