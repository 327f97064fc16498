/// The seeded generator and the stable hash behind the instruction tasks. Both are written out
/// here (SplitMix64, FNV-1a) rather than borrowed, so that a seed names the same data set on
/// every machine, Swift version and future change elsewhere in LoomData.
struct TaskRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    /// A generator for one named stream of a seed (`"arithmetic/train"`), independent of the others.
    init(seed: UInt64, stream: String) {
        state = seed ^ TaskRandom.mix(TaskRandom.stableHash(stream))
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return TaskRandom.mix(state)
    }

    /// A uniform integer in 0..<bound (rejection sampling, no modulo bias).
    mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        let limit = UInt64(bound)
        let threshold = (0 &- limit) % limit
        while true {
            let (high, low) = limit.multipliedFullWidth(by: next())
            if low >= threshold { return Int(high) }
        }
    }

    /// A uniform integer in `range`.
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.count)
    }

    mutating func pick<T>(_ values: [T]) -> T {
        values[below(values.count)]
    }

    /// Fisher–Yates with this generator.
    mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(i, below(i + 1))
        }
    }

    /// The SplitMix64 finaliser.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 64-bit FNV-1a of the UTF-8 bytes: the same on every run (Swift's `Hasher` is not).
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
