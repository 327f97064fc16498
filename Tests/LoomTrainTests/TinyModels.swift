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
