"""Writes a copy of a GGUF file with another `tokenizer.ggml.pre` (the pre-tokenizer name).

llama.cpp refuses names it does not know, such as "loom" (the split rule Loom trains its own
tokenizers with, which `loom export gguf` writes faithfully). For speed comparisons with
llama.cpp on a Loom model, `Benchmarks/serve_compare.sh` gives llama.cpp a copy that names the
closest rule llama.cpp has ("qwen2": cl100k-style with single digits; Loom's rule differs in
splitting runs of CJK from adjacent Latin letters). Every other key and every tensor is copied
unchanged. Needs the `gguf` package (scripts/setup_python.sh installs it).

    python Benchmarks/gguf_set_pre.py IN.gguf OUT.gguf qwen2
"""
import sys

import gguf


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: gguf_set_pre.py IN.gguf OUT.gguf NAME")
    source, target, name = sys.argv[1:]
    reader = gguf.GGUFReader(source)
    architecture = reader.fields["general.architecture"]
    writer = gguf.GGUFWriter(target, bytes(architecture.parts[architecture.data[0]]).decode())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue   # the header fields and the architecture are written by GGUFWriter itself
        value_type = field.types[0]
        if key == "tokenizer.ggml.pre":
            writer.add_string(key, name)
        elif value_type == gguf.GGUFValueType.ARRAY:
            element_type = field.types[1]
            if element_type == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(key, values, value_type, sub_type=element_type)
        elif value_type == gguf.GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[field.data[0]]).decode("utf-8", errors="surrogateescape"), value_type)
        else:
            writer.add_key_value(key, field.parts[field.data[0]].tolist()[0], value_type)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
