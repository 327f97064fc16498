import Foundation
import XCTest
@testable import LoomTokenizer

final class ChatTemplateTests: XCTestCase {
    let conversation = [
        ChatMessage(role: "system", content: "You are a weaver."),
        ChatMessage(role: "user", content: "How do I start?"),
        ChatMessage(role: "assistant", content: "Stretch the warp threads first."),
        ChatMessage(role: "user", content: "And then? 然后呢？"),
        ChatMessage(role: "assistant", content: "Pass the weft, row after row. 😀"),
    ]

    func testRender() {
        XCTAssertEqual(
            ChatTemplate.chatML.render(Array(conversation.prefix(2)), addGenerationPrompt: true),
            "<|im_start|>system\nYou are a weaver.<|im_end|>\n<|im_start|>user\nHow do I start?<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(ChatTemplate.chatML.render([], addGenerationPrompt: false), "")
    }

    /// SmolLM2's template (as its GGUF carries it) inserts a default system message when the
    /// conversation has none, exactly as Hugging Face's apply_chat_template renders it.
    func testDefaultSystemPromptOfATemplate() {
        let smolLM2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        var template = ChatTemplate.chatML
        XCTAssertNil(template.defaultSystem)
        template.jinja = smolLM2
        XCTAssertEqual(template.defaultSystem, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        XCTAssertEqual(template.render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(template.render(Array(conversation.prefix(2)), addGenerationPrompt: false),
                       ChatTemplate.chatML.render(Array(conversation.prefix(2)), addGenerationPrompt: false))
        let tokenizer = Reference.trainTiny()
        let ids = template.encodePrompt([ChatMessage(role: "user", content: "Hi")], tokenizer: tokenizer)
        XCTAssertEqual(tokenizer.decode(ids), template.render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true))
    }

    /// Loom renders ChatML only: ChatML templates (its own, SmolLM2's) are renderable; a template
    /// with other turn markers is refused with a message that says which format it is and what
    /// still works, rather than rendered as ChatML.
    func testOnlyChatMLTemplatesAreRendered() throws {
        XCTAssertNil(ChatTemplate.chatML.unsupportedReason)
        var smolLM2 = ChatTemplate.chatML
        smolLM2.jinja = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        XCTAssertNoThrow(try smolLM2.checkRenderable())
        var llama3 = ChatTemplate.chatML
        llama3.jinja = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
        XCTAssertThrowsError(try llama3.checkRenderable(file: "/models/llama3")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("/models/llama3: the model's chat template does not use ChatML"), message)
            XCTAssertTrue(message.contains("<|start_header_id|>"), message)
            XCTAssertTrue(message.contains("loom generate without --chat"), message)
        }
        XCTAssertEqual(ChatTemplate.firstMarker(in: "{{ bos_token }}{% for m in messages %}{{ '<start_of_turn>' + m['role'] }}"), "<start_of_turn>")
        XCTAssertEqual(ChatTemplate.firstMarker(in: "{{ bos_token }}{% if x < 3 %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"), "[INST]")
        XCTAssertNil(ChatTemplate.firstMarker(in: "{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}{% endfor %}"))
    }

    func testAssistantMaskCoversExactlyAssistantContentAndImEnd() {
        let tokenizer = Reference.trainTiny()
        let template = tokenizer.chatTemplate
        let (ids, mask) = template.encodeForTraining(conversation, tokenizer: tokenizer)
        XCTAssertEqual(ids.count, mask.count)
        // Same ids as encoding the rendered text in one go (no content starts with whitespace).
        XCTAssertEqual(ids, tokenizer.encode(template.render(conversation, addGenerationPrompt: false)))
        // The masked tokens, decoded run by run, are exactly each assistant reply + <|im_end|>.
        var runs: [[Int]] = []
        for (i, id) in ids.enumerated() where mask[i] {
            if i > 0 && mask[i - 1] { runs[runs.count - 1].append(id) } else { runs.append([id]) }
        }
        XCTAssertEqual(runs.map { tokenizer.decode($0) },
                       conversation.filter { $0.role == "assistant" }.map { $0.content + "<|im_end|>" })
        let imEnd = tokenizer.tokenID("<|im_end|>")!
        XCTAssertEqual(runs.map { $0.last }, [imEnd, imEnd])
        // Everything unmasked decodes to the headers, the system/user turns and the newlines.
        let unmasked = zip(ids, mask).filter { !$0.1 }.map(\.0)
        XCTAssertEqual(tokenizer.decode(unmasked),
                       "<|im_start|>system\nYou are a weaver.<|im_end|>\n<|im_start|>user\nHow do I start?<|im_end|>\n<|im_start|>assistant\n\n"
                       + "<|im_start|>user\nAnd then? 然后呢？<|im_end|>\n<|im_start|>assistant\n\n")
    }

    func testPromptMatchesTrainingSegmentation() {
        let tokenizer = Reference.trainTiny()
        let history = Array(conversation.prefix(4))
        let prompt = tokenizer.chatTemplate.encodePrompt(history, tokenizer: tokenizer)
        let full = tokenizer.chatTemplate.encodeForTraining(conversation, tokenizer: tokenizer).ids
        XCTAssertEqual(Array(full.prefix(prompt.count)), prompt)
        XCTAssertEqual(prompt, tokenizer.encode(tokenizer.chatTemplate.render(history, addGenerationPrompt: true)))
        // Content cannot forge a turn boundary.
        let (ids, _) = tokenizer.chatTemplate.encodeForTraining([ChatMessage(role: "user", content: "<|im_end|>")], tokenizer: tokenizer)
        XCTAssertEqual(ids.filter { $0 == tokenizer.tokenID("<|im_end|>") }.count, 1)
    }
}
