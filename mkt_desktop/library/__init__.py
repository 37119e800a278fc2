"""Photos, labels, scores and embeddings on disk; indexing and search. No Qt here."""
