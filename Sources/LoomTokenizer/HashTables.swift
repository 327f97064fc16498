import Foundation

// Two small open-addressing hash tables for the hot loops of encoding and training.
//
// `Dictionary<UInt64, …>` and `Dictionary<[UInt8], …>` are correct but cost a hash of a
// generic key, resilient calls, and for byte keys an array allocation per lookup. Encoding
// looks up a pair rank per candidate merge and a cached word per pre-token, so these tables
// use flat arrays, a multiplicative hash and linear probing instead.

/// Maps a token pair, packed as `UInt64(left) << 32 | UInt64(right)`, to a `UInt64` value.
struct PairMap {
    private(set) var keys: [UInt64]
    private(set) var values: [UInt64]
    private(set) var count = 0
    private var shift: UInt64
    static let empty = UInt64.max

    init(minimumCapacity: Int = 16) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
    }

    @inline(__always) static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always) private func slot(for key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always) func get(_ key: UInt64) -> UInt64? {
        keys.withUnsafeBufferPointer { keys in
            let mask = keys.count - 1
            var i = slot(for: key)
            while true {
                let k = keys[i]
                if k == key { return values[i] }
                if k == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts or overwrites.
    mutating func set(_ key: UInt64, _ value: UInt64) {
        precondition(key != Self.empty)
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var i = slot(for: key)
        while true {
            let k = keys[i]
            if k == key { values[i] = value; return }
            if k == Self.empty {
                keys[i] = key; values[i] = value; count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        self = PairMap(minimumCapacity: oldKeys.count)
        for i in 0..<oldKeys.count where oldKeys[i] != Self.empty { set(oldKeys[i], oldValues[i]) }
    }
}

/// FNV-style hash of a byte string, eight bytes at a time.
@inline(__always)
func hashBytes(_ base: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(count)
    let raw = UnsafeRawPointer(base)
    var i = 0
    while i + 8 <= count {
        h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01B3
        h ^= h >> 29
        i += 8
    }
    var tail: UInt64 = 0
    var s: UInt64 = 0
    while i < count { tail |= UInt64(base[i]) << s; s += 8; i += 1 }
    h = (h ^ tail) &* 0x9E37_79B9_7F4A_7C15
    return h ^ (h >> 32)
}

/// Maps byte strings to a run of `Int32`s, storing both in flat arenas. Used as the encoder's
/// word → ids cache and as the trainer's word → index table (a one-element run).
struct ByteStringMap {
    private(set) var keyBytes: [UInt8] = []
    private(set) var valueStore: [Int32] = []
    /// Per entry: key start, key length, value start, value length.
    private(set) var entries: [(keyStart: Int32, keyCount: Int32, valueStart: Int32, valueCount: Int32)] = []
    private var slots: [Int32]  // entry index, -1 when empty
    private var hashes: [UInt64]

    var count: Int { entries.count }
    var byteCount: Int { keyBytes.count }

    init(minimumCapacity: Int = 1024) {
        var capacity = 1024
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        slots = [Int32](repeating: -1, count: capacity)
        hashes = [UInt64](repeating: 0, count: capacity)
    }

    mutating func removeAll() {
        keyBytes.removeAll(keepingCapacity: true)
        valueStore.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i] = -1 }
    }

    /// The entry index for `key`, if present.
    @inline(__always)
    func find(_ key: UnsafePointer<UInt8>, _ count: Int, hash: UInt64) -> Int? {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: hash) & mask
            while true {
                let e = Int(slots[i])
                if e < 0 { return nil }
                if hashes[i] == hash {
                    let entry = entries[e]
                    if Int(entry.keyCount) == count {
                        let equal = keyBytes.withUnsafeBufferPointer { memcmp($0.baseAddress! + Int(entry.keyStart), key, count) == 0 }
                        if equal { return e }
                    }
                }
                i = (i + 1) & mask
            }
        }
    }

    /// Appends a new entry (the caller has checked that `key` is absent); returns its index.
    @discardableResult
    mutating func insert(_ key: UnsafePointer<UInt8>, _ count: Int, hash: UInt64, values: UnsafeBufferPointer<Int32>) -> Int {
        if (entries.count + 1) * 2 > slots.count { grow() }
        let index = entries.count
        entries.append((Int32(keyBytes.count), Int32(count), Int32(valueStore.count), Int32(values.count)))
        keyBytes.append(contentsOf: UnsafeBufferPointer(start: key, count: count))
        valueStore.append(contentsOf: values)
        place(index, hash: hash)
        return index
    }

    @inline(__always) func values(of entry: Int) -> ArraySlice<Int32> {
        let e = entries[entry]
        return valueStore[Int(e.valueStart)..<Int(e.valueStart + e.valueCount)]
    }

    func key(of entry: Int) -> ArraySlice<UInt8> {
        let e = entries[entry]
        return keyBytes[Int(e.keyStart)..<Int(e.keyStart + e.keyCount)]
    }

    mutating func setFirstValue(of entry: Int, _ value: Int32) {
        valueStore[Int(entries[entry].valueStart)] = value
    }

    func firstValue(of entry: Int) -> Int32 { valueStore[Int(entries[entry].valueStart)] }

    private mutating func place(_ index: Int, hash: UInt64) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = Int32(index)
        hashes[i] = hash
    }

    private mutating func grow() {
        let oldSlots = slots, oldHashes = hashes
        slots = [Int32](repeating: -1, count: oldSlots.count * 2)
        hashes = [UInt64](repeating: 0, count: oldSlots.count * 2)
        for i in 0..<oldSlots.count where oldSlots[i] >= 0 { place(Int(oldSlots[i]), hash: oldHashes[i]) }
    }
}
