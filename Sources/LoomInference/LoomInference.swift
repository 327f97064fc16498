// LoomInference: KV cache, samplers and generation.
@_exported import LoomNN
