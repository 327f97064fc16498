import Foundation
import Hummingbird
import Logging
import LoomInference
import LoomNN
import LoomTokenizer
import NIOCore
import ServiceLifecycle

/// How `loom serve` listens and what it allows.
public struct ServeOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Requests must carry `Authorization: Bearer <key>` (`/health` and the page excepted).
    public var apiKey: String?
    /// Sequences decoded together (slots of the KV cache).
    public var parallel = 4
    /// Sequences that may wait for a slot; beyond, requests get 503.
    public var queueLimit = 64
    /// Positions per slot (prompt + answer); at most the model's context.
    public var context = 2048
    /// Request bodies larger than this get 413.
    public var maxBodyBytes = 2 << 20
    /// `Access-Control-Allow-Origin` for browsers on other origins; nil: no CORS headers.
    public var corsOrigin: String?
    /// The model's name in `/v1/models` and responses.
    public var modelName = "loom"
    public init() {}
}

/// The OpenAI-compatible HTTP service (`loom serve`): chat and text completions with
/// streaming, the model list, tokenization, health, Prometheus metrics and a chat page.
public final class LoomServer: Sendable {
    public let engine: InferenceEngine
    public let options: ServeOptions
    let created = Int(Date().timeIntervalSince1970)

    public init(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, options: ServeOptions) {
        self.options = options
        engine = InferenceEngine(model: model, tokenizer: tokenizer, slots: options.parallel, context: options.context,
                                 queueLimit: options.queueLimit, metrics: ServerMetrics())
    }

    var tokenizer: ByteLevelBPETokenizer { engine.tokenizer }

    /// Serves until SIGINT or SIGTERM; `onListening` gets the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        engine.start()
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(server: self))
        router.get("/") { _, _ in try self.page() }
        router.get("/health") { _, _ in Self.json(.object([("status", "ok")])) }
        router.get("/v1/models") { _, _ in Self.json(.object([("object", "list"), ("data", .array([self.modelCard]))])) }
        router.get("/v1/models/:id") { _, context in
            guard context.parameters.get("id") == self.options.modelName else {
                throw APIError(status: 404, message: "The model '\(context.parameters.get("id") ?? "")' does not exist; this server has '\(self.options.modelName)'.",
                               type: "invalid_request_error", param: "model", code: "model_not_found")
            }
            return Self.json(self.modelCard)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: self.engine.metrics.render())))
        }
        router.post("/tokenize") { request, _ in try await self.tokenize(request) }
        router.post("/detokenize") { request, _ in try await self.detokenize(request) }
        router.post("/v1/chat/completions") { request, _ in try await self.complete(request, kind: .chat) }
        router.post("/v1/completions") { request, _ in try await self.complete(request, kind: .completion) }

        var logger = Logger(label: "loom.serve")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "loom"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? self.options.port) },
            logger: logger)
        // The group shuts its services down last to first: the scheduler drains before the HTTP
        // server waits for its open responses (inside the application the server would go first
        // and wait for answers that the scheduler was still generating).
        let group = ServiceGroup(configuration: .init(services: [app, DrainOnShutdown(engine: engine)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    var modelCard: JSONValue {
        .object([("id", .string(options.modelName)), ("object", "model"), ("created", .int(created)), ("owned_by", "loom"),
                 ("context_length", .int(engine.context)), ("max_model_len", .int(engine.context))])
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized)))
    }

    func page() throws -> Response {
        guard let url = Bundle.module.url(forResource: "index", withExtension: "html", subdirectory: "Resources"),
              let data = try? Data(contentsOf: url) else {
            throw APIError(status: 500, message: "the chat page is missing from this build", type: "server_error")
        }
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Bodies

    func readJSON(_ request: Request) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: options.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(status: 413, message: "The request body is larger than this server's limit of \(options.maxBodyBytes) bytes.",
                           type: "invalid_request_error", code: "request_too_large")
        }
        let bytes = Array(buffer.readableBytesView)
        guard !bytes.isEmpty else { throw APIError.invalid("The request has no body; send a JSON object.") }
        do {
            return try JSONValue.parse(bytes)
        } catch let error as JSONValue.SyntaxError {
            throw APIError.invalid("We could not parse the JSON body of your request: \(error).")
        }
    }

    func tokenize(_ request: Request) async throws -> Response {
        let reader = try RequestReader(body: try await readJSON(request), tokenizer: tokenizer, maxChoices: 1)
        let ids: [Int]
        if reader.body["messages"] != nil {
            ids = try reader.chat(context: engine.context).prompts[0].map(Int.init)
        } else if let v = reader.body["prompt"], case .string(let text) = v {
            ids = tokenizer.encodeAsPrompt(text)
        } else {
            throw APIError.invalid("Send 'prompt' (a string) or 'messages' (a chat) to tokenize.", param: "prompt")
        }
        return Self.json(.object([("tokens", .array(ids.map(JSONValue.int))), ("count", .int(ids.count)),
                                  ("max_model_len", .int(engine.context))]))
    }

    func detokenize(_ request: Request) async throws -> Response {
        let body = try await readJSON(request)
        guard case .object = body, let v = body["tokens"], case .array(let items) = v else {
            throw APIError.invalid("Send 'tokens', a list of token ids, to detokenize.", param: "tokens")
        }
        let ids: [Int] = try items.map {
            guard case .number(let x) = $0, x == x.rounded(), x >= 0, x < Double(tokenizer.vocabularySize) else {
                throw APIError.invalid("'tokens' holds \($0.serialized), which is not a token id (0 to \(tokenizer.vocabularySize - 1)).", param: "tokens")
            }
            return Int(x)
        }
        return Self.json(.object([("prompt", .string(tokenizer.decode(ids)))]))
    }

    // MARK: Completions

    func complete(_ request: Request, kind: CompletionRequest.Kind) async throws -> Response {
        let reader = try RequestReader(body: try await readJSON(request), tokenizer: tokenizer, maxChoices: max(options.parallel, 16))
        let parsed = kind == .chat ? try reader.chat(context: engine.context)
                                   : try reader.completion(context: engine.context, vocabulary: tokenizer.vocabularySize)
        let specs = try parsed.sequences(context: engine.context)
        let (events, continuation) = AsyncStream.makeStream(of: (Int, SequenceEvent).self)
        let tickets: [SequenceTicket]
        do {
            tickets = try engine.submit(specs) { index, event in continuation.yield((index, event)) }
        } catch let error as EngineError {
            throw APIError(status: 503, message: error.description, type: "server_error", code: "server_overloaded")
        }
        let response = CompletionResponder(kind: kind, id: (kind == .chat ? "chatcmpl-" : "cmpl-") + Self.randomID(),
                                           created: Int(Date().timeIntervalSince1970), model: options.modelName,
                                           choices: specs.count, promptsPerChoice: parsed.n, logprobs: parsed.topLogprobs != nil)
        if !parsed.stream {
            let result = await withTaskCancellationHandler {
                await response.collect(events)
            } onCancel: {
                tickets.forEach { $0.cancel() }
            }
            return Self.json(result)
        }
        let includeUsage = parsed.includeUsage
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                do {
                    try await response.stream(events, includeUsage: includeUsage) { chunk in
                        try await writer.write(ByteBuffer(string: "data: \(chunk)\n\n"))
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                } catch {
                    // The client went away (or the write failed): free the slots at the next step.
                    tickets.forEach { $0.cancel() }
                    throw error
                }
            })
    }

    static func randomID() -> String {
        (0..<24).map { _ in String("abcdefghijklmnopqrstuvwxyz0123456789".randomElement()!) }.joined()
    }
}

/// On SIGTERM/SIGINT (graceful shutdown), ends the running and waiting sequences so that their
/// responses complete and the server stops promptly instead of waiting for every answer.
struct DrainOnShutdown: Service {
    let engine: InferenceEngine
    func run() async throws {
        try? await gracefulShutdown()
        engine.drain()
    }
}

/// Auth, CORS, OpenAI-shaped errors and request counting around every route.
struct APIMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let server: LoomServer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let endpoint = ["/", "/health", "/metrics", "/tokenize", "/detokenize", "/v1/models", "/v1/chat/completions", "/v1/completions"]
            .contains(path) ? path : (path.hasPrefix("/v1/models/") ? "/v1/models/{id}" : "other")
        var response: Response
        if request.method == .options, let origin = server.options.corsOrigin {
            response = Response(status: .noContent)
            addCORS(&response, origin: origin)
            return response
        }
        do {
            try authorize(request, path: path)
            response = try await next(request, context)
        } catch let error as APIError {
            response = LoomServer.json(error.body, status: .init(code: error.status))
        } catch let error as HTTPError {
            let status = error.status
            let message = status == .notFound ? "Unknown request URL: \(request.method) \(path)."
                : status == .methodNotAllowed ? "Method \(request.method) is not allowed for \(path)." : (error.body ?? "\(status)")
            let api = APIError(status: Int(status.code), message: message, type: "invalid_request_error",
                               code: status == .notFound ? "unknown_url" : nil)
            response = LoomServer.json(api.body, status: status)
        }
        if let origin = server.options.corsOrigin { addCORS(&response, origin: origin) }
        server.engine.metrics.request(endpoint: endpoint, status: Int(response.status.code))
        return response
    }

    func authorize(_ request: Request, path: String) throws {
        guard let key = server.options.apiKey, path != "/health", !(path == "/" && request.method == .get) else { return }
        let header = request.headers[.authorization] ?? ""
        let expected = "Bearer " + key
        // Compare every byte whatever the first difference, so the time does not reveal a prefix.
        let a = Array(header.utf8), b = Array(expected.utf8)
        var difference = a.count ^ b.count
        for i in 0..<b.count { difference |= Int((i < a.count ? a[i] : 0) ^ b[i]) }
        guard difference == 0 else {
            throw APIError(status: 401, message: header.isEmpty
                ? "You didn't provide an API key. Send it in an Authorization header: 'Authorization: Bearer YOUR_KEY'."
                : "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        }
    }

    func addCORS(_ response: inout Response, origin: String) {
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type"
        response.headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
    }
}
