/// Records the backward of every op executed while it is active, and replays them in
/// reverse order. Ops append in execution order, so reverse order is a valid reverse
/// topological order.
///
///     let tape = Tape()
///     let loss = tape.record { model.loss(tokens) }
///     tape.backward(loss)
public final class Tape {
    struct Entry {
        let op: StaticString
        let backward: () -> Void
    }

    /// The tape that ops record onto; `nil` means no gradients are tracked.
    nonisolated(unsafe) public internal(set) static var current: Tape?

    var entries: [Entry] = []

    public init() { entries.reserveCapacity(256) }

    public var count: Int { entries.count }

    /// Runs `body` with this tape recording.
    public func record<T>(_ body: () throws -> T) rethrows -> T {
        let previous = Tape.current
        Tape.current = self
        defer { Tape.current = previous }
        return try body()
    }

    /// Seeds d(loss)/d(loss) = `seed` and runs every recorded backward in reverse.
    /// Releases the recorded closures (and the activations they hold) afterwards.
    public func backward(from loss: Tensor, seed: Float = 1) {
        precondition(loss.count == 1, "backward(from:) needs a scalar, got shape \(loss.shape)")
        loss.grad.pointer[0] += seed
        runBackward()
    }

    /// Backward from a non-scalar output whose gradient the caller already put in `grad`.
    public func runBackward() {
        for entry in entries.reversed() {
            Profiler.time(entry.op, phase: .backward) { entry.backward() }
        }
        entries.removeAll(keepingCapacity: true)
    }

    /// Records a backward closure if a tape is active and any input requires gradients.
    /// Returns whether the op's output requires gradients.
    @inline(__always)
    static func recordIfNeeded(_ op: StaticString, inputs: [Tensor], _ backward: @escaping () -> Void) -> Bool {
        guard let tape = Tape.current, inputs.contains(where: { $0.requiresGrad }) else { return false }
        tape.entries.append(Entry(op: op, backward: backward))
        return true
    }
}

/// Runs `body` with gradient tracking off (inference).
public func withoutGradients<T>(_ body: () throws -> T) rethrows -> T {
    let previous = Tape.current
    Tape.current = nil
    defer { Tape.current = previous }
    return try body()
}
