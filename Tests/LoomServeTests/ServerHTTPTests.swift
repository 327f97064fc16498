import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import LoomServe

/// The HTTP service end to end on loopback: one server (port 0, an API key) for all tests.
final class ServerHTTPTests: XCTestCase {
    static let key = "test-key"
    static let port: Int = {
        let (model, tokenizer) = TinyChatModel.shared
        var options = ServeOptions()
        options.port = 0
        options.apiKey = key
        options.parallel = 4
        options.queueLimit = 8
        options.context = 128
        options.maxBodyBytes = 4096
        options.modelName = "tiny"
        let server = LoomServer(model: model, tokenizer: tokenizer, options: options)
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var bound = 0
        Task.detached { try await server.run { port in bound = port; ready.signal() } }
        ready.wait()
        return bound
    }()

    func call(_ method: String, _ path: String, body: String? = nil, key: String? = ServerHTTPTests.key) throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(Self.port)\(path)")!)
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let body { request.httpBody = Data(body.utf8); request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Int, String)?
        nonisolated(unsafe) var failure: Error?
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error { failure = error } else {
                result = ((response as! HTTPURLResponse).statusCode, String(decoding: data ?? Data(), as: UTF8.self))
            }
            done.signal()
        }.resume()
        XCTAssertEqual(done.wait(timeout: .now() + 120), .success, "\(method) \(path) timed out")
        if let failure { throw failure }
        return result!
    }

    func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// Asserts an OpenAI error body with this status and param.
    func assertError(_ response: (status: Int, body: String), _ status: Int, param: String?, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(response.status, status, response.body, file: file, line: line)
        let error = try XCTUnwrap(try object(response.body)["error"] as? [String: Any], response.body, file: file, line: line)
        XCTAssertNotNil(error["message"] as? String, file: file, line: line)
        XCTAssertNotNil(error["type"] as? String, file: file, line: line)
        if let param { XCTAssertEqual(error["param"] as? String, param, response.body, file: file, line: line) }
    }

    func testChatCompletionAndUsage() throws {
        let r = try call("POST", "/v1/chat/completions", body: #"{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"seed":3,"temperature":0.7}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let o = try object(r.body)
        XCTAssertEqual(o["object"] as? String, "chat.completion")
        let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual((choice["message"] as? [String: Any])?["role"] as? String, "assistant")
        let usage = try XCTUnwrap(o["usage"] as? [String: Any])
        XCTAssertEqual(usage["completion_tokens"] as? Int, 5)
        XCTAssertEqual(choice["finish_reason"] as? String, "length")
        // The same seeded request again: the same answer.
        let again = try call("POST", "/v1/chat/completions", body: #"{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"seed":3,"temperature":0.7}"#)
        XCTAssertEqual(((try object(again.body)["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String,
                       (choice["message"] as? [String: Any])?["content"] as? String)
    }

    func testStreamingWithUsageChunk() throws {
        let r = try call("POST", "/v1/completions", body: #"{"prompt":"The quick","max_tokens":4,"stream":true,"stream_options":{"include_usage":true},"n":2,"seed":1}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let lines = r.body.split(separator: "\n").filter { !$0.isEmpty }
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("data: ") })
        XCTAssertEqual(lines.last, "data: [DONE]")
        let chunks = try lines.dropLast().map { try object(String($0.dropFirst(6))) }
        let usageChunk = try XCTUnwrap(chunks.last)
        XCTAssertEqual((usageChunk["choices"] as? [Any])?.count, 0)
        XCTAssertEqual((usageChunk["usage"] as? [String: Any])?["completion_tokens"] as? Int, 8)
        let finishes = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }.filter { $0["finish_reason"] is String }
        XCTAssertEqual(Set(finishes.compactMap { $0["index"] as? Int }), [0, 1])
    }

    func testBadRequestsGetOpenAIErrorsAndTheServerGoesOn() throws {
        let chat = "/v1/chat/completions"
        try assertError(try call("POST", chat, body: "{not json"), 400, param: nil)
        try assertError(try call("POST", chat, body: #"{"model":"tiny"}"#), 400, param: "messages")
        try assertError(try call("POST", chat, body: #"{"messages":[]}"#), 400, param: "messages")
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"wizard","content":"x"}]}"#), 400, param: "messages[0].role")
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":5}]}"#), 400, param: "messages[0].content")
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#), 400, param: "max_tokens")
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}],"max_tokens":1000}"#), 400, param: "max_tokens")
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#), 400, param: "temperature")
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}],"n":true}"#), 400, param: "n")
        let long = String(repeating: "fox ", count: 300)
        try assertError(try call("POST", "/v1/completions", body: #"{"prompt":"\#(long)"}"#), 400, param: "prompt")
        try assertError(try call("POST", chat, body: "{\"messages\":[{\"role\":\"user\",\"content\":\"\(String(repeating: "x", count: 5000))\"}]}"), 413, param: nil)
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}]}"#, key: nil), 401, param: nil)
        try assertError(try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}]}"#, key: "wrong"), 401, param: nil)
        try assertError(try call("GET", "/v1/nothing"), 404, param: nil)
        XCTAssertEqual(try call("GET", "/health", key: nil).status, 200)
        let models = try object(try call("GET", "/v1/models").body)
        XCTAssertEqual(((models["data"] as? [[String: Any]])?.first)?["id"] as? String, "tiny")
        // Still serving.
        let ok = try call("POST", chat, body: #"{"messages":[{"role":"user","content":"x"}],"max_tokens":2}"#)
        XCTAssertEqual(ok.status, 200, ok.body)
        let metrics = try call("GET", "/metrics").body
        XCTAssertTrue(metrics.contains("loom_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"}"), metrics)
    }

    func testJSONObjectTokenizeAndLogprobs() throws {
        let r = try call("POST", "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"Give JSON"}],"response_format":{"type":"json_object"},"max_tokens":30,"logprobs":true,"top_logprobs":2}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let choice = try XCTUnwrap((try object(r.body)["choices"] as? [[String: Any]])?.first)
        let content = try XCTUnwrap((choice["message"] as? [String: Any])?["content"] as? String)
        XCTAssertTrue(try JSONSerialization.jsonObject(with: Data(content.utf8)) is [String: Any], content)
        let entries = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
        XCTAssertFalse(entries.isEmpty)
        XCTAssertEqual((entries[0]["top_logprobs"] as? [Any])?.count, 2)
        let t = try object(try call("POST", "/tokenize", body: #"{"prompt":"The quick brown fox"}"#).body)
        let ids = try XCTUnwrap(t["tokens"] as? [Int])
        let d = try object(try call("POST", "/detokenize", body: "{\"tokens\":\(ids)}").body)
        XCTAssertEqual(d["prompt"] as? String, "The quick brown fox")
    }
}
