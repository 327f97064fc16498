// LoomTokenizer: byte-level BPE — training, encoding/decoding, Hugging Face tokenizer.json I/O,
// special tokens and the chat template.
