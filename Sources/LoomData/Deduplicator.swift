import Foundation

/// Settings for `Deduplicator`.
public struct DedupOptions: Sendable, Codable, Equatable {
    public var exact = true
    public var near = true
    /// Documents whose estimated Jaccard similarity reaches this are near-duplicates.
    public var threshold = 0.8
    /// LSH banding: `bands × rows` MinHash values (128 by default). A pair with Jaccard `s`
    /// becomes a candidate with probability 1 − (1 − s^rows)^bands: 0.95 at 0.8, 0.06 at 0.5.
    public var bands = 16
    public var rows = 8
    /// Shingles are this many consecutive words…
    public var wordShingleSize = 5
    /// …or this many consecutive characters in text that is mostly Chinese/Japanese/Korean.
    public var cjkShingleSize = 4
    public var seed: UInt64 = 0x4C4F_4F4D  // "LOOM"

    public init() {}

    public var permutations: Int { bands * rows }
}

/// A near-duplicate that was removed, and the earlier document it matched.
public struct NearDuplicateExample: Codable, Sendable, Equatable {
    public var kept: String
    public var removed: String
    public var estimatedJaccard: Double
}

public struct DedupReport: Codable, Sendable, Equatable {
    public var documentsIn = 0
    public var documentsOut = 0
    public var exactDuplicates = 0
    public var nearDuplicates = 0
    /// Pairs that shared an LSH bucket and had their signatures compared.
    public var candidatePairs = 0
    public var threshold = 0.0
    public var permutations = 0
    public var bands = 0
    public var rows = 0
    /// The first few near-duplicates found (at most 10).
    public var nearDuplicateExamples: [NearDuplicateExample] = []

    public init() {}
}

/// MinHash signatures over word shingles (character shingles for CJK text).
public struct MinHasher: Sendable {
    public let permutations: Int
    public let wordShingleSize: Int
    public let cjkShingleSize: Int
    private let salts: [UInt64]

    public init(permutations: Int = 128, seed: UInt64 = 0x4C4F_4F4D, wordShingleSize: Int = 5, cjkShingleSize: Int = 4) {
        precondition(permutations > 0 && wordShingleSize > 0 && cjkShingleSize > 0)
        self.permutations = permutations
        self.wordShingleSize = wordShingleSize
        self.cjkShingleSize = cjkShingleSize
        var state = seed
        self.salts = (0..<permutations).map { _ in Hashing.splitMix64(&state) }
    }

    static func isCJK(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x3040...0x30FF).contains(v)
            || (0xAC00...0xD7AF).contains(v) || (0xF900...0xFAFF).contains(v) || (0x20000...0x2FA1F).contains(v)
    }

    /// The text as units: each CJK character is a unit, and so is each run of other letters and
    /// digits (lower-cased). Punctuation and spaces separate units and are otherwise ignored.
    /// Also says whether CJK characters make up at least 30% of the letters.
    public static func units(_ text: String) -> (units: [UInt64], mostlyCJK: Bool) {
        var units: [UInt64] = []
        var cjk = 0, letters = 0
        var word: UInt64 = Hashing.fnvOffset
        var inWord = false
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if isCJK(v) {
                if inWord { units.append(word); inWord = false; word = Hashing.fnvOffset }
                units.append(Hashing.fnv1a(UInt64(v), into: Hashing.fnvOffset ^ 0xC1))
                cjk += 1
                letters += 1
            } else if scalar.properties.isAlphabetic || scalar.properties.numericType != nil {
                for lower in scalar.properties.lowercaseMapping.unicodeScalars {
                    word = Hashing.fnv1a(UInt64(lower.value), into: word)
                }
                inWord = true
                letters += 1
            } else if inWord {
                units.append(word)
                inWord = false
                word = Hashing.fnvOffset
            }
        }
        if inWord { units.append(word) }
        return (units, letters > 0 && cjk * 10 >= letters * 3)
    }

    /// The distinct shingle hashes of a text.
    public func shingles(_ text: String) -> [UInt64] {
        let (units, mostlyCJK) = Self.units(text)
        guard !units.isEmpty else { return [] }
        let size = min(mostlyCJK ? cjkShingleSize : wordShingleSize, units.count)
        var result = Set<UInt64>()
        result.reserveCapacity(units.count)
        for start in 0...(units.count - size) {
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15
            for k in start..<(start + size) { h = Hashing.mix(h ^ units[k]) }
            result.insert(h)
        }
        return Array(result)
    }

    /// The MinHash signature: for each seeded hash function, the least hash over all shingles.
    /// Empty for a text without letters or digits.
    public func signature(_ text: String) -> [UInt64] {
        let shingles = shingles(text)
        guard !shingles.isEmpty else { return [] }
        var signature = [UInt64](repeating: .max, count: permutations)
        signature.withUnsafeMutableBufferPointer { sig in
            salts.withUnsafeBufferPointer { salt in
                for shingle in shingles {
                    for p in 0..<permutations {
                        let h = Hashing.mix(shingle ^ salt[p])
                        if h < sig[p] { sig[p] = h }
                    }
                }
            }
        }
        return signature
    }

    /// The fraction of positions where two signatures agree: an estimate of their Jaccard similarity.
    public static func estimatedJaccard(_ a: [UInt64], _ b: [UInt64]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var equal = 0
        for i in 0..<a.count where a[i] == b[i] { equal += 1 }
        return Double(equal) / Double(a.count)
    }

    /// The exact Jaccard similarity of two texts' shingle sets (for tests and diagnostics).
    public func jaccard(_ a: String, _ b: String) -> Double {
        let x = Set(shingles(a)), y = Set(shingles(b))
        guard !x.isEmpty || !y.isEmpty else { return 1 }
        return Double(x.intersection(y).count) / Double(x.union(y).count)
    }
}

/// Removes exact duplicates (same text up to whitespace) and near-duplicates (MinHash + LSH),
/// keeping the first occurrence in input order.
public struct Deduplicator: Sendable {
    public var options: DedupOptions

    public init(options: DedupOptions = DedupOptions()) {
        self.options = options
    }

    /// The text exact deduplication compares: whitespace runs collapsed to one space, trimmed.
    public static func exactKey(_ text: String) -> String {
        text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    public func deduplicate(
        _ documents: [Document],
        origin: (Document) -> String = { "document \($0.position)" },
        showProgress: Bool = false
    ) -> (documents: [Document], report: DedupReport) {
        var report = DedupReport()
        report.documentsIn = documents.count
        report.threshold = options.threshold
        report.bands = options.bands
        report.rows = options.rows
        report.permutations = options.permutations

        // Exact duplicates: a 64-bit FNV-1a hash of the whitespace-normalised text, confirmed
        // by comparing the texts themselves.
        var survivors: [Document] = []
        if options.exact {
            var firstByHash: [UInt64: [String]] = [:]
            for document in documents {
                let key = Self.exactKey(document.text)
                let hash = Hashing.fnv1a(key.utf8)
                if let earlier = firstByHash[hash], earlier.contains(key) {
                    report.exactDuplicates += 1
                    continue
                }
                firstByHash[hash, default: []].append(key)
                survivors.append(document)
            }
        } else {
            survivors = documents
        }

        if options.near && !survivors.isEmpty {
            survivors = removeNearDuplicates(survivors, report: &report, origin: origin, showProgress: showProgress)
        }
        report.documentsOut = survivors.count
        return (survivors, report)
    }

    private func removeNearDuplicates(
        _ documents: [Document], report: inout DedupReport, origin: (Document) -> String, showProgress: Bool
    ) -> [Document] {
        let hasher = MinHasher(permutations: options.permutations, seed: options.seed,
                               wordShingleSize: options.wordShingleSize, cjkShingleSize: options.cjkShingleSize)
        var signatures = [[UInt64]](repeating: [], count: documents.count)
        let progress = showProgress ? ProgressBar(label: "minhash", total: documents.count, unit: .items("docs")) : nil
        signatures.withUnsafeMutableBufferPointer { slots in
            let base = slots.baseAddress!
            let workers = min(documents.count, ProcessInfo.processInfo.activeProcessorCount * 4)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var k = worker
                while k < documents.count {
                    base[k] = hasher.signature(documents[k].text)
                    progress?.advance()
                    k += workers
                }
            }
        }
        progress?.finish()

        var buckets = [[UInt64: [Int]]](repeating: [:], count: options.bands)
        var kept: [Document] = []
        kept.reserveCapacity(documents.count)
        for (index, document) in documents.enumerated() {
            let signature = signatures[index]
            guard !signature.isEmpty else { kept.append(document); continue }
            var bandKeys: [UInt64] = []
            bandKeys.reserveCapacity(options.bands)
            for band in 0..<options.bands {
                var h = Hashing.fnvOffset ^ UInt64(band)
                for r in 0..<options.rows { h = Hashing.mix(h ^ signature[band * options.rows + r]) }
                bandKeys.append(h)
            }
            var candidates = Set<Int>()
            for band in 0..<options.bands {
                if let members = buckets[band][bandKeys[band]] { candidates.formUnion(members) }
            }
            var best: (index: Int, jaccard: Double)? = nil
            for candidate in candidates.sorted() {
                report.candidatePairs += 1
                let j = MinHasher.estimatedJaccard(signature, signatures[candidate])
                if j >= options.threshold && j > (best?.jaccard ?? -1) { best = (candidate, j) }
            }
            if let best {
                report.nearDuplicates += 1
                if report.nearDuplicateExamples.count < 10 {
                    report.nearDuplicateExamples.append(NearDuplicateExample(
                        kept: origin(documents[best.index]), removed: origin(document),
                        estimatedJaccard: (best.jaccard * 1000).rounded() / 1000))
                }
                continue
            }
            for band in 0..<options.bands { buckets[band][bandKeys[band], default: []].append(index) }
            kept.append(document)
        }
        return kept
    }
}

/// Small, fixed hash functions: results must not change between runs or machines (Swift's
/// `Hasher` is randomly seeded per process).
public enum Hashing {
    public static let fnvOffset: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let fnvPrime: UInt64 = 0x0000_0100_0000_01B3

    @inline(__always)
    public static func fnv1a(_ value: UInt64, into hash: UInt64) -> UInt64 {
        var h = hash
        var v = value
        repeat {
            h = (h ^ (v & 0xFF)) &* fnvPrime
            v >>= 8
        } while v != 0
        return h
    }

    public static func fnv1a<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h = fnvOffset
        for b in bytes { h = (h ^ UInt64(b)) &* fnvPrime }
        return h
    }

    /// The SplitMix64 finaliser: a good 64-bit bit mixer.
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One step of the SplitMix64 generator.
    @inline(__always)
    public static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
