/// A seeded random number generator (SplitMix64): the same seed gives the same sequence on
/// every machine and Swift version, unlike `SystemRandomNumberGenerator` or `shuffled()`.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        Hashing.splitMix64(&state)
    }

    /// A uniform integer in 0..<bound, without modulo bias.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        let limit = UInt64(bound)
        let threshold = (0 &- limit) % limit
        while true {
            let r = next()
            let (high, low) = limit.multipliedFullWidth(by: r)
            if low >= threshold { return Int(high) }
        }
    }
}

/// Splits documents into training and validation sets by whole document.
public enum DatasetSplitter {
    /// A seeded permutation of 0..<count (Fisher–Yates with `SeededGenerator`).
    public static func permutation(count: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<count)
        var rng = SeededGenerator(seed: seed)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                order.swapAt(i, rng.below(i + 1))
            }
        }
        return order
    }

    /// The number of validation documents: `valFraction` of them, rounded, but at least one in
    /// each split when there are two or more documents and `valFraction` is above zero.
    public static func validationCount(documents: Int, valFraction: Double) -> Int {
        guard documents > 0, valFraction > 0 else { return 0 }
        guard documents >= 2 else { return 0 }
        let wanted = Int((Double(documents) * valFraction).rounded())
        return min(documents - 1, max(1, wanted))
    }

    /// Indices of the training and validation documents, each in the seeded shuffled order
    /// (so that a sequential reader of the shards sees sources mixed).
    public static func split(count: Int, valFraction: Double, seed: UInt64) -> (train: [Int], validation: [Int]) {
        split(groups: [Int](repeating: 0, count: count), valFraction: valFraction, seed: seed)
    }

    /// A split stratified by group (for example, by source): each group gives `valFraction` of
    /// its documents (rounded) to validation, so a corpus of a few long books and many short
    /// sayings gets a validation set with some of each rather than whichever kind is most
    /// numerous. Still at least one document in each split when there are two or more and
    /// `valFraction` is above zero. Both lists come in a seeded shuffled order.
    public static func split(groups: [Int], valFraction: Double, seed: UInt64) -> (train: [Int], validation: [Int]) {
        let count = groups.count
        var members: [Int: [Int]] = [:]
        for (index, group) in groups.enumerated() { members[group, default: []].append(index) }
        var isValidation = [Bool](repeating: false, count: count)
        var valCount = 0
        if valFraction > 0 {
            for group in members.keys.sorted() {
                let indices = members[group]!
                let order = permutation(count: indices.count, seed: seed ^ Hashing.mix(UInt64(bitPattern: Int64(group))))
                let take = Int((Double(indices.count) * valFraction).rounded())
                for k in order.prefix(take) { isValidation[indices[k]] = true }
                valCount += take
            }
        }
        let order = permutation(count: count, seed: seed)
        let wanted = validationCount(documents: count, valFraction: valFraction)
        if wanted > 0 && valCount == 0 {
            isValidation[order[0]] = true
        } else if wanted > 0 && valCount == count {
            isValidation[order[0]] = false
        }
        return (order.filter { !isValidation[$0] }, order.filter { isValidation[$0] })
    }
}
