import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The element type of a token shard; the raw value is its size in bytes, as stored in the header.
public enum TokenDType: UInt32, Codable, Sendable, CustomStringConvertible {
    case uint16 = 2
    case uint32 = 4

    /// uint16 whenever every token id fits (vocabulary of at most 65,536).
    public static func forVocabulary(size: Int) -> TokenDType {
        size <= 65_536 ? .uint16 : .uint32
    }

    public var byteWidth: Int { Int(rawValue) }
    public var maxToken: Int { self == .uint16 ? Int(UInt16.max) : Int(UInt32.max) }
    public var description: String { self == .uint16 ? "uint16" : "uint32" }
}

/// The token shard file format:
///
///     offset  size  field
///     0       8     magic "LOOMTOK1"
///     8       4     version, UInt32 little-endian = 1
///     12      4     dtype, UInt32 little-endian: 2 = uint16, 4 = uint32
///     16      8     count of tokens, UInt64 little-endian
///     24      …     the tokens, little-endian, count × dtype bytes
public enum TokenShardFormat {
    public static let magic: [UInt8] = Array("LOOMTOK1".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 24

    public static func header(dtype: TokenDType, count: Int) -> [UInt8] {
        var bytes = magic
        withUnsafeBytes(of: version.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: dtype.rawValue.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt64(count).littleEndian) { bytes += $0 }
        return bytes
    }

    /// The shard file name: `train_000.bin`, `val_012.bin`.
    public static func fileName(split: String, index: Int) -> String {
        split + "_" + String(format: "%03d", index) + ".bin"
    }
}

/// One written shard: its file name (relative to the dataset folder) and number of tokens.
public struct ShardInfo: Codable, Sendable, Equatable {
    public var file: String
    public var tokens: Int
}

/// Writes a split's tokens into shards of at most `tokensPerShard` tokens. Each shard is
/// written to a temporary name and renamed when complete, so a shard that exists is whole.
///
///     let writer = try ShardWriter(directory: out, split: "train", dtype: .uint16)
///     try writer.append(tokens)
///     let shards = try writer.finish()
public final class ShardWriter {
    public let directory: URL
    public let split: String
    public let dtype: TokenDType
    public let tokensPerShard: Int
    public private(set) var shards: [ShardInfo] = []
    public private(set) var totalTokens = 0

    private var handle: FileHandle?
    private var currentTemporaryURL: URL?
    private var currentCount = 0
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 22

    public init(directory: URL, split: String, dtype: TokenDType, tokensPerShard: Int = 50_000_000) throws {
        guard tokensPerShard > 0 else { throw DataError.invalidOption("tokens per shard must be positive, got \(tokensPerShard)") }
        self.directory = directory
        self.split = split
        self.dtype = dtype
        self.tokensPerShard = tokensPerShard
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    public func append<C: Collection>(_ tokens: C) throws where C.Element: BinaryInteger {
        for token in tokens {
            guard token >= 0 && Int(token) <= dtype.maxToken else {
                throw DataError.invalidOption("token id \(token) does not fit in \(dtype) (shard \(split))")
            }
            if handle == nil { try openShard() }
            switch dtype {
            case .uint16: withUnsafeBytes(of: UInt16(token).littleEndian) { buffer += $0 }
            case .uint32: withUnsafeBytes(of: UInt32(token).littleEndian) { buffer += $0 }
            }
            currentCount += 1
            totalTokens += 1
            if buffer.count >= bufferLimit { try flushBuffer() }
            if currentCount == tokensPerShard { try closeShard() }
        }
    }

    /// Closes the last shard and returns all shards. A split with no tokens still gets one
    /// empty shard, so readers find the file they expect.
    @discardableResult
    public func finish() throws -> [ShardInfo] {
        if handle == nil && shards.isEmpty { try openShard() }
        if handle != nil { try closeShard() }
        return shards
    }

    private func openShard() throws {
        let name = TokenShardFormat.fileName(split: split, index: shards.count)
        let temporary = directory.appendingPathComponent("." + name + ".tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw DataError.unreadable(path: temporary.path, reason: "cannot create file")
        }
        handle = try FileHandle(forWritingTo: temporary)
        currentTemporaryURL = temporary
        currentCount = 0
        // The real count is written over this provisional zero when the shard closes.
        buffer = TokenShardFormat.header(dtype: dtype, count: 0)
    }

    private func flushBuffer() throws {
        guard let handle, !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    private func closeShard() throws {
        guard let handle, let temporary = currentTemporaryURL else { return }
        try flushBuffer()
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: TokenShardFormat.header(dtype: dtype, count: currentCount))
        try handle.synchronize()
        try handle.close()
        let name = TokenShardFormat.fileName(split: split, index: shards.count)
        let final = directory.appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
        try FileManager.default.moveItem(at: temporary, to: final)
        shards.append(ShardInfo(file: name, tokens: currentCount))
        self.handle = nil
        currentTemporaryURL = nil
        currentCount = 0
    }
}

/// A memory-mapped token shard with random access.
///
///     let shard = try TokenShard(url: out.appendingPathComponent("train_000.bin"))
///     let first = shard[0]
///     shard.copy(from: 1000, count: 256, into: batchPointer)
public final class TokenShard: @unchecked Sendable {
    public let url: URL
    public let dtype: TokenDType
    public let count: Int
    private let mapping: UnsafeMutableRawPointer?
    private let mappedSize: Int
    private let tokens: UnsafeRawPointer

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        func fail(_ reason: String) -> DataError { .badShard(path: path, reason: reason) }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw DataError.fileNotFound(path: path) }
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw DataError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        guard size >= TokenShardFormat.headerSize else {
            throw fail("truncated file: \(size) bytes, shorter than the \(TokenShardFormat.headerSize)-byte header")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw DataError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        // From here on the mapping must be released on every error path.
        var ok = false
        defer { if !ok { munmap(base, size) } }
        let raw = UnsafeRawPointer(base)
        let magic = Array(UnsafeRawBufferPointer(start: raw, count: 8))
        guard magic == TokenShardFormat.magic else {
            let shown = magic.map { (0x20...0x7E).contains($0) ? String(UnicodeScalar($0)) : "." }.joined()
            throw fail("bad magic \"\(shown)\", expected \"LOOMTOK1\" (not a Loom token shard)")
        }
        let version = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard version == TokenShardFormat.version else { throw fail("unsupported version \(version), expected 1") }
        let rawDType = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard let dtype = TokenDType(rawValue: rawDType) else {
            throw fail("unknown dtype \(rawDType) (expected 2 for uint16 or 4 for uint32)")
        }
        let count = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        let payload = UInt64(size - TokenShardFormat.headerSize)
        let (expected, overflow) = count.multipliedReportingOverflow(by: UInt64(dtype.byteWidth))
        guard !overflow, expected <= payload else {
            throw fail("truncated file: header says \(count) tokens (\(overflow ? "overflow" : String(expected)) bytes) but only \(payload) bytes follow it")
        }
        guard expected == payload else {
            throw fail("\(payload - expected) unexpected bytes after the \(count) tokens the header declares")
        }
        ok = true
        self.dtype = dtype
        self.count = Int(count)
        self.mapping = base
        self.mappedSize = size
        self.tokens = raw + TokenShardFormat.headerSize
    }

    deinit {
        if let mapping { munmap(mapping, mappedSize) }
    }

    /// The token at `index`.
    @inline(__always)
    public subscript(index: Int) -> Int {
        precondition(index >= 0 && index < count, "token index \(index) out of range 0..<\(count) in \(url.path)")
        switch dtype {
        case .uint16: return Int(UInt16(littleEndian: tokens.load(fromByteOffset: index * 2, as: UInt16.self)))
        case .uint32: return Int(UInt32(littleEndian: tokens.load(fromByteOffset: index * 4, as: UInt32.self)))
        }
    }

    /// Copies `count` tokens starting at `start` into `destination`, widened to Int32.
    public func copy(from start: Int, count n: Int, into destination: UnsafeMutablePointer<Int32>) {
        precondition(start >= 0 && n >= 0 && start + n <= count, "token range \(start)..<\(start + n) out of range 0..<\(count) in \(url.path)")
        switch dtype {
        case .uint16:
            let source = tokens.assumingMemoryBound(to: UInt16.self) + start
            for i in 0..<n { destination[i] = Int32(UInt16(littleEndian: source[i])) }
        case .uint32:
            let source = tokens.assumingMemoryBound(to: UInt32.self) + start
            for i in 0..<n { destination[i] = Int32(bitPattern: UInt32(littleEndian: source[i])) }
        }
    }

    /// The first token whose id is `limit` or more, with its index, or nil when every id is
    /// below `limit`. One pass over the file.
    public func firstToken(atLeast limit: Int) -> (index: Int, token: Int)? {
        guard count > 0 else { return nil }
        switch dtype {
        case .uint16:
            guard limit <= Int(UInt16.max) else { return nil }
            let source = tokens.assumingMemoryBound(to: UInt16.self)
            let bound = UInt16(limit)
            for i in 0..<count where UInt16(littleEndian: source[i]) >= bound { return (i, Int(UInt16(littleEndian: source[i]))) }
        case .uint32:
            guard limit <= Int(UInt32.max) else { return nil }
            let source = tokens.assumingMemoryBound(to: UInt32.self)
            let bound = UInt32(limit)
            for i in 0..<count where UInt32(littleEndian: source[i]) >= bound { return (i, Int(UInt32(littleEndian: source[i]))) }
        }
        return nil
    }

    /// Throws unless every token id is below `vocabularySize`, naming the file, the position
    /// and the id. Ids index the embedding table in kernels built without bounds checks, so a
    /// shard is checked once when it is opened for a model, not per read.
    public func checkTokens(below vocabularySize: Int) throws {
        if let (index, token) = firstToken(atLeast: vocabularySize) {
            throw DataError.badShard(path: url.path, reason: "token \(index) has id \(token), outside the model's vocabulary of \(vocabularySize) ids (0...\(vocabularySize - 1))")
        }
    }

    /// The tokens in `start..<start+count` as an array (convenience for tests and tools).
    public func tokens(from start: Int, count n: Int) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: n) { buffer, initialized in
            copy(from: start, count: n, into: buffer.baseAddress!)
            initialized = n
        }
    }
}

/// The shards of one split of a prepared dataset, read as one long token sequence.
///
///     let train = try TokenDataset(directory: URL(fileURLWithPath: "out/data"), split: "train")
///     var window = [Int32](repeating: 0, count: 257)
///     window.withUnsafeMutableBufferPointer { train.copy(from: offset, count: 257, into: $0.baseAddress!) }
public final class TokenDataset: @unchecked Sendable {
    public let directory: URL
    public let split: String
    public let shards: [TokenShard]
    /// The first global index of each shard, plus the total at the end.
    private let offsets: [Int]
    public var count: Int { offsets.last ?? 0 }
    /// The manifest, when the folder has one.
    public let manifest: Manifest?

    /// Opens the shards listed for `split` in the folder's `manifest.json`; without a manifest,
    /// every `<split>_NNN.bin` in the folder, in name order.
    public init(directory: URL, split: String = "train") throws {
        self.directory = directory
        self.split = split
        let manifestURL = directory.appendingPathComponent(Manifest.fileName)
        var files: [String]
        if FileManager.default.fileExists(atPath: manifestURL.path) {
            let manifest = try Manifest.load(from: directory)
            self.manifest = manifest
            guard let summary = manifest.splits[split] else {
                throw DataError.badManifest(path: manifestURL.path, reason: "no split \"\(split)\" (has: \(manifest.splits.keys.sorted().joined(separator: ", ")))")
            }
            files = summary.shards.map(\.file)
        } else {
            self.manifest = nil
            guard FileManager.default.fileExists(atPath: directory.path) else { throw DataError.fileNotFound(path: directory.path) }
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            files = names.filter { $0.hasPrefix(split + "_") && $0.hasSuffix(".bin") }.sorted()
            guard !files.isEmpty else {
                throw DataError.fileNotFound(path: directory.appendingPathComponent(split + "_000.bin").path)
            }
        }
        shards = try files.map { try TokenShard(url: directory.appendingPathComponent($0)) }
        var offsets = [0]
        for shard in shards { offsets.append(offsets.last! + shard.count) }
        self.offsets = offsets
        if let manifest, let expected = manifest.splits[split]?.tokens, expected != count {
            throw DataError.badManifest(path: manifestURL.path, reason: "split \"\(split)\" lists \(expected) tokens but its shards hold \(count)")
        }
    }

    /// Throws unless every token id of every shard is below `vocabularySize`
    /// (`TokenShard.checkTokens`). Call it before the tokens reach a model.
    public func checkTokens(below vocabularySize: Int) throws {
        for shard in shards { try shard.checkTokens(below: vocabularySize) }
    }

    /// The shard holding global index `index`, and the index within it.
    @inline(__always)
    private func locate(_ index: Int) -> (shard: Int, local: Int) {
        var low = 0, high = shards.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if offsets[mid] <= index { low = mid } else { high = mid - 1 }
        }
        return (low, index - offsets[low])
    }

    public subscript(index: Int) -> Int {
        precondition(index >= 0 && index < count, "token index \(index) out of range 0..<\(count) in split \(split)")
        let (shard, local) = locate(index)
        return shards[shard][local]
    }

    /// Copies a window of `count` tokens starting at `start`, across shard boundaries.
    public func copy(from start: Int, count n: Int, into destination: UnsafeMutablePointer<Int32>) {
        precondition(start >= 0 && n >= 0 && start + n <= count, "token range \(start)..<\(start + n) out of range 0..<\(count) in split \(split)")
        guard n > 0 else { return }
        var (shard, local) = locate(start)
        var written = 0
        while written < n {
            let take = min(n - written, shards[shard].count - local)
            if take > 0 { shards[shard].copy(from: local, count: take, into: destination + written) }
            written += take
            shard += 1
            local = 0
        }
    }

    /// A window as an array.
    public func window(from start: Int, count n: Int) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: n) { buffer, initialized in
            copy(from: start, count: n, into: buffer.baseAddress!)
            initialized = n
        }
    }
}
