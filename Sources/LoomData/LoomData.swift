// LoomData: corpus ingestion, cleaning, deduplication, token shards, and JSONL datasets.
//
// The pieces, in pipeline order:
//   Corpus.ingest          read .txt/.md/.jsonl (and .gz of those) into documents
//   TextCleaner            NFC, no ANSI/control characters, boilerplate lines, near-empty documents
//   Deduplicator           exact (FNV-1a of normalised text) and near (MinHash + LSH) duplicates
//   DatasetSplitter        seeded train/validation split by document
//   ShardWriter            LOOMTOK1 token shards (uint16/uint32)
//   TokenShard/TokenDataset memory-mapped random access over the shards of a split
//   Manifest               manifest.json: what was read, removed, kept and written
//   PreparePipeline        all of the above, as `loom prepare` runs it
//   JSONLReader            JSON Lines with errors naming file and line (also for SFT/preference data)
//   ProgressBar            progress on standard error
//   TokenizerBridge        ByteLevelBPETokenizer as the CorpusTokenizer of PreparePipeline
