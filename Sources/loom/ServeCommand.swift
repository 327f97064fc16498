import ArgumentParser
import Foundation
import LoomInference
import LoomServe
import LoomTensor

/// `loom serve`: the model as an OpenAI-compatible HTTP service.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over an OpenAI-compatible HTTP API (chat and text completions, streaming) with continuous batching.",
        discussion: """
        Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, POST /tokenize, \
        POST /detokenize, GET /metrics (Prometheus), GET / (a chat page). Up to --parallel requests decode together \
        in one batched forward pass per step; further requests wait in a queue of --queue sequences, then get 503. \
        Binds to 127.0.0.1 unless --host says otherwise. Stop with Ctrl-C (SIGINT) or SIGTERM.
        """)

    @Option(help: "Model directory.") var model: String
    @Option(help: "LoRA adapter directory (PEFT format), merged into the model at load.") var adapter: String?
    @Option(help: "Address to bind (0.0.0.0 for every interface).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the chosen one is printed).") var port = 8080
    @Option(help: "Require 'Authorization: Bearer KEY' (default: $LOOM_API_KEY when set).") var apiKey: String?
    @Option(help: "Requests decoded together (KV-cache slots).") var parallel = 4
    @Option(help: "Sequences that may wait for a slot before requests get 503.") var queue = 64
    @Option(help: "Positions per slot, prompt and answer together (default: the model's context, at most 2048).") var context: Int?
    @Option(help: "Largest request body in bytes (larger: 413).") var maxBodyBytes = 2 << 20
    @Option(help: "Allow browsers on this origin (CORS); default: no CORS headers.") var corsOrigin: String?
    @Option(help: "Model name in the API (default: the directory's name).") var modelName: String?
    @Option(help: "Threads for the forward passes.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535, got \(port)") }
        guard (1...256).contains(parallel) else { throw ValidationError("--parallel must be 1…256, got \(parallel)") }
        guard queue >= 0 else { throw ValidationError("--queue must be ≥ 0, got \(queue)") }
        if let context { guard context >= 2 else { throw ValidationError("--context must be at least 2, got \(context)") } }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024, got \(maxBodyBytes)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let apiKey { guard !apiKey.isEmpty else { throw ValidationError("--api-key must not be empty") } }
        guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
    }

    func run() throws {
        Threading.configure(threads: threads)
        let (model, tokenizer) = try loadModelAndTokenizer(model, adapter: adapter)
        let modelContext = model.configuration.maxPositionEmbeddings
        if let context, context > modelContext {
            throw ValidationError("--context \(context) is more than the model's context of \(modelContext)")
        }
        var options = ServeOptions()
        options.host = host
        options.port = port
        options.apiKey = apiKey ?? ProcessInfo.processInfo.environment["LOOM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        options.parallel = parallel
        options.queueLimit = queue
        options.context = context ?? min(modelContext, 2048)
        options.maxBodyBytes = maxBodyBytes
        options.corsOrigin = corsOrigin
        options.modelName = modelName ?? URL(fileURLWithPath: self.model).standardizedFileURL.lastPathComponent
        let server = LoomServer(model: model, tokenizer: tokenizer, options: options)
        let host = self.host, parallel = self.parallel, name = options.modelName, context = options.context
        let keyed = options.apiKey != nil
        let c = model.configuration
        let cacheMiB = 2 * c.layerCount * parallel * context * c.kvHeadCount * c.headDim * MemoryLayout<Float>.stride / (1 << 20)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task.detached {
            do {
                try await server.run { port in
                    let shown = host.contains(":") ? "[\(host)]" : host
                    print("loom serve: http://\(shown):\(port)/ model \(name), \(parallel) slots × \(context) positions (KV cache \(cacheMiB) MiB, reserved now)\(keyed ? ", API key required" : "")")
                    fflush(stdout)
                }
            } catch {
                failure = error
            }
            done.signal()
        }
        done.wait()
        if let failure { throw ValidationError("the server stopped: \(failure)") }
    }
}
