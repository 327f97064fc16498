// LoomEval: perplexity, bits per byte, few-shot tasks, reports.
@_exported import LoomInference
