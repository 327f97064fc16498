import Foundation

extension DataParallel {
    /// Checks, before the first step, that every rank was started the same way: `description`
    /// holds what must agree (the run's settings signature, a fingerprint of the data, the step
    /// resumed from). Rank 0's description is broadcast; a rank whose own differs prints which
    /// entries differ, and then every rank throws — so a launch with mixed configurations,
    /// data or checkpoints stops at once, on every rank, instead of training on silently
    /// different batches or waiting in mismatched collectives.
    public func checkSameLaunch(_ description: [String: String]) throws {
        guard isDistributed else { return }
        var text = Array(description.keys.sorted().map { "\($0)=\(description[$0]!)" }.joined(separator: "\n").utf8)
        let mine = text
        var length = UInt64(text.count)
        withUnsafeMutableBytes(of: &length) { communicator.broadcast($0, root: 0) }
        text = [UInt8](repeating: 0, count: Int(length))
        if isPrimary { text = mine }
        text.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) }
        var differing = [Double](repeating: 0, count: size)
        if text != mine {
            differing[rank] = 1
            let primary = Self.parse(String(decoding: text, as: UTF8.self))
            let changed = Set(primary.keys).union(description.keys).sorted().filter { primary[$0] != description[$0] }
                .map { "\($0): rank 0 has \(primary[$0] ?? "(absent)"), rank \(rank) has \(description[$0] ?? "(absent)")" }
            FileHandle.standardError.write(Data("error: rank \(rank) was started differently from rank 0: \(changed.joined(separator: "; "))\n".utf8))
        }
        differing = communicator.allReduced(differing, .max)
        let ranks = differing.indices.filter { differing[$0] != 0 }
        guard ranks.isEmpty else {
            // Every rank has printed its differences before any of them stops the job.
            communicator.barrier()
            throw DistributedError("rank\(ranks.count == 1 ? "" : "s") \(ranks.map(String.init).joined(separator: ", ")) of \(size) "
                                   + "started with other settings, data or checkpoint than rank 0 (see the lines above); "
                                   + "start every rank with the same command, files and run directory")
        }
    }

    private static func parse(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            result[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return result
    }
}

/// A 64-bit FNV-1a hash, as hex: a short fingerprint of data that every rank must agree on.
public struct Fingerprint {
    private var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}

    public mutating func add<T>(_ values: [T]) {
        values.withUnsafeBytes { bytes in
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
    }

    public mutating func add(_ value: Int) { add([value]) }

    public var hex: String { String(hash, radix: 16) }
}
