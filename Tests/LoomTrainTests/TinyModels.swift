import Foundation
@testable import LoomInference

/// A randomly initialised 2-layer Llama with grouped-query attention (4 heads, 2 key/value
/// heads, hidden 32), for tests that need a real model but no trained one.
func tinyRandomLlama(vocabulary: Int, maxPositions: Int = 40, seed: UInt64) -> LlamaModel {
    let config = LlamaConfiguration(vocabularySize: vocabulary, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                    headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: maxPositions)
    let model = LlamaModel(configuration: config)
    model.initializeWeights(seed: seed, standardDeviation: 0.3)
    return model
}

/// Directories that a test class's tests share for the whole test process (the `static let`
/// fixtures: a prepared corpus, a small model), removed when the process exits so that test
/// runs leave nothing behind in the temporary directory. XCTest ends the process with `exit`,
/// which runs the handler.
enum ProcessFixtures {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var directories: [URL] = []
    private static let handler: Void = { atexit { ProcessFixtures.removeAll() } }()

    /// `url`, to be removed (with its contents) when the process exits.
    static func removedAtExit(_ url: URL) -> URL {
        handler
        lock.lock(); defer { lock.unlock() }
        directories.append(url)
        return url
    }

    private static func removeAll() {
        lock.lock(); defer { lock.unlock() }
        for url in directories { try? FileManager.default.removeItem(at: url) }
        directories.removeAll()
    }
}
