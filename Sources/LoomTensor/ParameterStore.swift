/// All trainable parameters of a model in one flat buffer, with their gradients in a second
/// flat buffer of the same layout. Each parameter is a `Tensor` view into both, so the
/// optimizer runs one fused loop, gradient clipping reads one buffer, an all-reduce is one
/// call and a checkpoint is one write.
///
///     let store = ParameterStore([("w", [4, 3]), ("b", [3])])
///     store["w"].fillNormal(std: 0.02, rng: &rng)
public final class ParameterStore {
    public struct Entry {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public let tensor: Tensor
    }

    public let values: Storage
    public private(set) var gradients: Storage
    public private(set) var entries: [Entry] = []
    private var index: [String: Int] = [:]

    public init(_ layout: [(name: String, shape: [Int])]) {
        let total = layout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        values = Storage(count: total, longLived: true)
        gradients = Storage(count: total, longLived: true)
        var offset = 0
        for (name, shape) in layout {
            precondition(index[name] == nil, "duplicate parameter \(name)")
            let n = shape.reduce(1, *)
            let tensor = Tensor(storage: Storage(viewOf: values, offset: offset, count: n), shape: shape,
                                requiresGrad: true, gradient: Storage(viewOf: gradients, offset: offset, count: n))
            tensor.name = name
            index[name] = entries.count
            entries.append(Entry(name: name, shape: shape, offset: offset, tensor: tensor))
            offset += n
        }
    }

    public var count: Int { values.count }
    public var names: [String] { entries.map(\.name) }

    public subscript(name: String) -> Tensor {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return entries[i].tensor
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    public func zeroGradients() { gradients.zero() }

    /// Turns gradient tracking on or off for every parameter (off for frozen reference models).
    public func setRequiresGrad(_ flag: Bool) { for e in entries { e.tensor.requiresGrad = flag } }

    /// Freezes every parameter for good: no gradients flow into them and the gradient buffer
    /// is released (the base weights of LoRA training, which cost no gradient memory).
    public func freeze() {
        for e in entries {
            e.tensor.requiresGrad = false
            e.tensor.gradientSlot.storage = nil
        }
        gradients = Storage(count: 0)
    }

    /// Whether `freeze` released the gradients.
    public var isFrozen: Bool { gradients.count != count }

    /// Copies every value from another store with the same layout.
    public func copyValues(from other: ParameterStore) {
        precondition(other.count == count, "parameter stores differ in size")
        values.pointer.update(from: other.values.pointer, count: count)
    }
}
