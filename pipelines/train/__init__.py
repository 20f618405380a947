"""Train: the shared-encoder model, data-parallel on Ray Train (driver -> worker, data -> feed)."""
