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
    /// Set by `watchGradients` for the next backward pass; nil (nothing to do) otherwise.
    private var watch: GradientWatch?

    public init() { entries.reserveCapacity(256) }

    /// Asks the next `backward` to call `onReady(i)` as soon as the gradient of `tensors[i]` is
    /// final: once the backward of the earliest recorded op that reads it (or a view of it, which
    /// shares its gradient) has run, as no op before that one adds to it. Tensors that no op
    /// reads are reported before the first backward runs. Call it before recording the forward
    /// pass (the readers are noted as the ops are recorded). Data-parallel training starts
    /// reducing a bucket of gradients while the backward of earlier layers still runs.
    public func watchGradients(of tensors: [Tensor], onReady: @escaping (Int) -> Void) {
        precondition(entries.isEmpty, "watchGradients: call it before recording")
        watch = GradientWatch(tensors, onReady: onReady)
    }

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
        if let watch {
            self.watch = nil
            let readyAfter = watch.readyAfterEntry(count: entries.count)
            for i in readyAfter.unread { watch.onReady(i) }
            for index in entries.indices.reversed() {
                let entry = entries[index]
                Profiler.time(entry.op, phase: .backward) { entry.backward() }
                for i in readyAfter.byEntry[index] ?? [] { watch.onReady(i) }
            }
        } else {
            for entry in entries.reversed() {
                Profiler.time(entry.op, phase: .backward) { entry.backward() }
            }
        }
        entries.removeAll(keepingCapacity: true)
    }

    /// Records a backward closure if a tape is active and any input requires gradients.
    /// Returns whether the op's output requires gradients.
    @inline(__always)
    static func recordIfNeeded(_ op: StaticString, inputs: [Tensor], _ backward: @escaping () -> Void) -> Bool {
        guard let tape = Tape.current, inputs.contains(where: { $0.requiresGrad }) else { return false }
        if let watch = tape.watch { watch.noteReaders(inputs, entry: tape.entries.count) }
        tape.entries.append(Entry(op: op, backward: backward))
        return true
    }
}

/// The tensors a tape watches (`Tape.watchGradients`) and the first recorded op that reads
/// each: tensors are known by their gradient slot, which their reshaped views share.
final class GradientWatch {
    let onReady: (Int) -> Void
    private var indexOfSlot: [ObjectIdentifier: Int] = [:]
    private var firstReader: [Int]

    init(_ tensors: [Tensor], onReady: @escaping (Int) -> Void) {
        self.onReady = onReady
        firstReader = [Int](repeating: -1, count: tensors.count)
        for (i, tensor) in tensors.enumerated() { indexOfSlot[ObjectIdentifier(tensor.gradientSlot)] = i }
    }

    func noteReaders(_ inputs: [Tensor], entry: Int) {
        for input in inputs where input.requiresGrad {
            if let i = indexOfSlot[ObjectIdentifier(input.gradientSlot)], firstReader[i] < 0 { firstReader[i] = entry }
        }
    }

    /// For each entry, the watched tensors whose gradients are final once it has run backward;
    /// and those no entry reads.
    func readyAfterEntry(count: Int) -> (byEntry: [Int: [Int]], unread: [Int]) {
        var byEntry: [Int: [Int]] = [:], unread: [Int] = []
        for (i, entry) in firstReader.enumerated() {
            if entry < 0 { unread.append(i) } else { byEntry[entry, default: []].append(i) }
        }
        return (byEntry, unread)
    }
}

/// Runs `body` with gradient tracking off (inference).
public func withoutGradients<T>(_ body: () throws -> T) rethrows -> T {
    let previous = Tape.current
    Tape.current = nil
    defer { Tape.current = previous }
    return try body()
}
