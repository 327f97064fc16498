// LoomNN: the Llama-style decoder, its heads, and safetensors I/O.
@_exported import LoomTensor
