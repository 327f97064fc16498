// LoomData: corpus ingestion, cleaning, deduplication, token shards, and JSONL datasets.
