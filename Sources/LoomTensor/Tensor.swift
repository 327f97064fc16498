/// The gradient of a tensor, shared between a tensor and its reshaped views so that a
/// gradient allocated through one is seen through the others.
public final class GradientSlot {
    public var storage: Storage?
    init(_ storage: Storage? = nil) { self.storage = storage }
}

/// A row-major, contiguous tensor of `Float`.
///
/// Activations are usually 2-D `[rows, features]` (rows = batch × time), which keeps every
/// linear layer a single matrix product. `reshaped` returns a view that shares data and
/// gradient. Ops in `Ops/` record their backward on the current `Tape`.
///
///     let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
///     let y = (x * x).sum()          // y = 91
public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let count: Int
    public let storage: Storage
    public let gradientSlot: GradientSlot
    /// Whether gradients flow into this tensor (parameters, and results of ops on them).
    public var requiresGrad: Bool
    /// A label for errors, checkpoints and the profiler (parameters carry their HF name).
    public var name: String?

    public init(storage: Storage, shape: [Int], requiresGrad: Bool = false, gradient: Storage? = nil) {
        let n = shape.reduce(1, *)
        precondition(n == storage.count, "shape \(shape) holds \(n) elements, storage has \(storage.count)")
        self.shape = shape
        self.count = n
        self.storage = storage
        self.gradientSlot = GradientSlot(gradient)
        self.requiresGrad = requiresGrad
    }

    init(storage: Storage, shape: [Int], requiresGrad: Bool, slot: GradientSlot) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = storage
        self.gradientSlot = slot
        self.requiresGrad = requiresGrad
    }

    /// A zero-filled tensor.
    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(storage: Storage(count: shape.reduce(1, *)), shape: shape, requiresGrad: requiresGrad)
    }

    /// A tensor whose every element the caller will overwrite.
    public convenience init(uninitialized shape: [Int]) {
        self.init(storage: Storage(uninitializedCount: shape.reduce(1, *)), shape: shape)
    }

    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        let s = Storage(uninitializedCount: values.count)
        values.withUnsafeBufferPointer { s.pointer.update(from: $0.baseAddress!, count: values.count) }
        self.init(storage: s, shape: shape, requiresGrad: requiresGrad)
    }

    public convenience init(scalar: Float) { self.init(shape: [1], values: [scalar]) }

    public convenience init(filling value: Float, shape: [Int]) {
        let t = Storage(uninitializedCount: shape.reduce(1, *))
        t.pointer.update(repeating: value, count: t.count)
        self.init(storage: t, shape: shape)
    }

    public var data: UnsafeMutablePointer<Float> { storage.pointer }
    public var rank: Int { shape.count }
    /// The last dimension (features); 1 for a scalar.
    public var lastDimension: Int { shape.last ?? 1 }
    /// Product of all but the last dimension.
    public var rows: Int { count / Swift.max(lastDimension, 1) }

    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    public var item: Float {
        precondition(count == 1, "item of a tensor with \(count) elements")
        return data[0]
    }

    /// The gradient buffer, allocated (zero-filled) on first use.
    public var grad: Storage {
        if let g = gradientSlot.storage { return g }
        let g = Storage(count: count)
        gradientSlot.storage = g
        return g
    }
    /// The gradient if one has been accumulated.
    public var gradIfPresent: Storage? { gradientSlot.storage }
    public var gradScalars: [Float]? { gradientSlot.storage.map { Array($0.buffer) } }

    public func zeroGrad() { gradientSlot.storage?.zero() }

    /// A view with another shape of the same element count, sharing data and gradient.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var dims = newShape
        if let inferred = dims.firstIndex(of: -1) {
            let known = dims.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            dims[inferred] = count / Swift.max(known, 1)
        }
        precondition(dims.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        let view = Tensor(storage: storage, shape: dims, requiresGrad: requiresGrad, slot: gradientSlot)
        view.name = name
        return view
    }

    /// A copy that does not require gradients and is not on any tape.
    public func detached() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.4f", $0) }.joined(separator: ", ")
        return "Tensor(\(name.map { $0 + " " } ?? "")shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}

import Foundation
