import ArgumentParser
import Foundation
import LoomInference
import LoomNN

/// `loom export gguf DIR --out FILE [--type f32|f16|q8_0|q4_0|q4_1]`: a model directory as a GGUF
/// Llama file that llama.cpp's tools and `transformers` read.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a Loom / Hugging Face model directory to another format.",
        subcommands: [ExportGGUFCommand.self])
}

struct ExportGGUFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Write a model directory as a GGUF Llama file (matrices as --type, norms as F32).")

    @Argument(help: "The model directory.") var directory: String
    @Option(help: "The .gguf file to write.") var out: String
    @Option(help: "Type of the weight matrices.") var type: GGUFExportType = .f16

    func run() throws {
        let started = Date()
        let url = URL(fileURLWithPath: out)
        try GGUFExport.export(directory: URL(fileURLWithPath: directory), to: url, type: type.ggmlType)
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        print(String(format: "exported %@ → %@ (%@, %.1f MB, %.1f s)", directory, out, type.rawValue, Double(size) / 1e6, Date().timeIntervalSince(started)))
    }
}
