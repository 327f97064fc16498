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

    /// `logit_bias` changes what is sampled: +100 on a token makes the greedy answer that token
    /// over and over, −100 on the greedy answer's first token makes it start otherwise.
    func testLogitBiasForcesAndBansTokens() throws {
        let ids = try XCTUnwrap(try object(try call("POST", "/tokenize", body: #"{"prompt":"z"}"#).body)["tokens"] as? [Int])
        XCTAssertEqual(ids.count, 1, "the tiny tokenizer should have \"z\" as one token: \(ids)")
        let forced = try object(try call("POST", "/v1/completions",
                                          body: #"{"prompt":"The quick","max_tokens":3,"temperature":0,"logit_bias":{"\#(ids[0])":100}}"#).body)
        XCTAssertEqual((forced["choices"] as? [[String: Any]])?.first?["text"] as? String, "zzz")

        func greedy(_ extra: String) throws -> (text: String, firstToken: String) {
            let r = try call("POST", "/v1/completions", body: #"{"prompt":"The quick","max_tokens":3,"temperature":0,"logprobs":0\#(extra)}"#)
            XCTAssertEqual(r.status, 200, r.body)
            let choice = try XCTUnwrap((try object(r.body)["choices"] as? [[String: Any]])?.first)
            let tokens = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["tokens"] as? [String])
            return (try XCTUnwrap(choice["text"] as? String), try XCTUnwrap(tokens.first))
        }
        let plain = try greedy("")
        let first = try XCTUnwrap(try object(try call("POST", "/tokenize", body: "{\"prompt\":\(JSONValue.string(plain.firstToken).serialized)}").body)["tokens"] as? [Int])
        XCTAssertEqual(first.count, 1, "\(plain.firstToken.debugDescription) → \(first)")
        let banned = try greedy(#","logit_bias":{"\#(first[0])":-100}"#)
        XCTAssertNotEqual(banned.firstToken, plain.firstToken)
        // A zero bias, or one on a token that is not chosen anyway, leaves the answer as it was.
        XCTAssertEqual(try greedy(#","logit_bias":{"\#(first[0])":0}"#).text, plain.text)
    }

    func testUnsupportedOrMalformedSamplingFieldsAreRefused() throws {
        let chat = "/v1/chat/completions", message = #""messages":[{"role":"user","content":"x"}],"max_tokens":2"#
        try assertError(try call("POST", chat, body: #"{\#(message),"logit_bias":[1]}"#), 400, param: "logit_bias")
        try assertError(try call("POST", chat, body: #"{\#(message),"logit_bias":{"abc":1}}"#), 400, param: "logit_bias")
        try assertError(try call("POST", chat, body: #"{\#(message),"logit_bias":{"+5":1}}"#), 400, param: "logit_bias")
        try assertError(try call("POST", chat, body: #"{\#(message),"logit_bias":{"99999999":1}}"#), 400, param: "logit_bias")
        try assertError(try call("POST", chat, body: #"{\#(message),"logit_bias":{"5":101}}"#), 400, param: "logit_bias")
        try assertError(try call("POST", chat, body: #"{\#(message),"logit_bias":{"5":"up"}}"#), 400, param: "logit_bias")
        let tool = #"[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#
        try assertError(try call("POST", chat, body: #"{\#(message),"tools":\#(tool)}"#), 400, param: "tools")
        try assertError(try call("POST", chat, body: #"{\#(message),"functions":[{"name":"f"}]}"#), 400, param: "functions")
        try assertError(try call("POST", chat, body: #"{\#(message),"tool_choice":"auto"}"#), 400, param: "tool_choice")
        try assertError(try call("POST", "/v1/completions", body: #"{"prompt":"x","max_tokens":2,"best_of":3}"#), 400, param: "best_of")
        // What asks for nothing is accepted.
        for accepted in [#"{\#(message),"tools":[],"tool_choice":"none"}"#, #"{\#(message),"logit_bias":{},"function_call":"none"}"#] {
            XCTAssertEqual(try call("POST", chat, body: accepted).status, 200, accepted)
        }
        XCTAssertEqual(try call("POST", "/v1/completions", body: #"{"prompt":"x","max_tokens":2,"best_of":1}"#).status, 200)
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
