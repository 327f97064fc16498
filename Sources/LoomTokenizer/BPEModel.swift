// The byte-level BPE model: the merge table and the merge loop applied to one pre-token.

/// A trained byte-level BPE: which token each byte starts as, and the ranked merge table.
///
/// Encoding a word follows the Hugging Face `tokenizers` rule exactly: repeatedly merge the
/// adjacent pair with the lowest rank, the leftmost one on ties, until no adjacent pair has
/// a merge. (GPT-2's original "merge every occurrence of the best pair" loop gives the same
/// result on well-formed files; the leftmost-first rule is the one that is also defined on
/// files whose merges are not in training order.)
struct BPEModel {
    /// Token id of each single byte; -1 where the vocabulary lacks it, in which case that
    /// byte is dropped, as `tokenizers` does when there is no unknown token.
    let byteTokens: [Int32]
    /// `PairMap.key(left, right)` → `UInt64(rank) << 32 | UInt64(merged id)`. Packing the rank
    /// in the high bits makes "smallest value" mean "lowest rank" in the merge loop.
    let merges: PairMap
    /// Hugging Face `ignore_merges` (Llama 3): a word that is itself a vocabulary entry is one
    /// token, without merging. Then `wholeWords` maps every entry's bytes to its id.
    let ignoreMerges: Bool
    let wholeWords: ByteStringMap?

    /// Words up to this many symbols use the simple quadratic loop over a small array, which
    /// beats a heap for the short words that dominate text; longer ones (CJK sentences, long
    /// digit or symbol runs) use the heap so that they cost O(n log n).
    static let heapThreshold = 48

    /// Reusable buffers for one encoder.
    final class Scratch {
        var symbols: [Int32] = []
        var pairValues: [UInt64] = []
        var previous: [Int32] = []
        var next: [Int32] = []
        var heap: [UInt64] = []
    }

    /// Appends the token ids of one pre-token (given as raw bytes) to `output`.
    func encodeWord(_ bytes: UnsafeBufferPointer<UInt8>, scratch: Scratch, into output: inout [Int32]) {
        if ignoreMerges, let wholeWords, let base = bytes.baseAddress,
           let entry = wholeWords.find(base, bytes.count, hash: hashBytes(base, bytes.count)) {
            output.append(wholeWords.firstValue(of: entry))
            return
        }
        scratch.symbols.removeAll(keepingCapacity: true)
        for byte in bytes {
            let token = byteTokens[Int(byte)]
            if token >= 0 { scratch.symbols.append(token) }
        }
        let n = scratch.symbols.count
        if n <= 1 {
            output.append(contentsOf: scratch.symbols)
        } else if n <= Self.heapThreshold {
            mergeSmall(scratch: scratch, into: &output)
        } else {
            mergeWithHeap(scratch: scratch, into: &output)
        }
    }

    @inline(__always) private func pairValue(_ left: Int32, _ right: Int32) -> UInt64 {
        merges.get(PairMap.key(left, right)) ?? UInt64.max
    }

    /// The classic loop: keep the rank of every adjacent pair in an array, merge the minimum,
    /// close the gap, and refresh the two pairs next to the merge.
    func mergeSmall(scratch: Scratch, into output: inout [Int32]) {
        var n = scratch.symbols.count
        if scratch.pairValues.count < n { scratch.pairValues = [UInt64](repeating: 0, count: max(n, 64)) }
        scratch.symbols.withUnsafeMutableBufferPointer { symbols in
            scratch.pairValues.withUnsafeMutableBufferPointer { values in
                for i in 0..<(n - 1) { values[i] = pairValue(symbols[i], symbols[i + 1]) }
                while n > 1 {
                    var best = 0
                    var bestValue = values[0]
                    for i in 1..<(n - 1) where values[i] < bestValue {
                        best = i
                        bestValue = values[i]
                    }
                    if bestValue == UInt64.max { break }
                    symbols[best] = Int32(truncatingIfNeeded: bestValue & 0xFFFF_FFFF)
                    var k = best + 1
                    while k < n - 1 { symbols[k] = symbols[k + 1]; k += 1 }
                    k = best + 1
                    while k < n - 2 { values[k] = values[k + 1]; k += 1 }
                    n -= 1
                    if best > 0 { values[best - 1] = pairValue(symbols[best - 1], symbols[best]) }
                    if best < n - 1 { values[best] = pairValue(symbols[best], symbols[best + 1]) }
                }
            }
        }
        output.append(contentsOf: scratch.symbols[0..<n])
    }

    /// Hugging Face's algorithm for long words: a doubly linked list of symbols and a min-heap
    /// of candidate merges keyed by (rank, position). Entries made stale by an earlier merge
    /// are recognised on pop — the pair now at that position no longer has that rank — and
    /// skipped.
    func mergeWithHeap(scratch: Scratch, into output: inout [Int32]) {
        let n = scratch.symbols.count
        scratch.previous = (0..<Int32(n)).map { $0 - 1 }
        scratch.next = (0..<Int32(n)).map { $0 + 1 }
        scratch.next[n - 1] = -1
        scratch.heap.removeAll(keepingCapacity: true)
        @inline(__always) func entry(rank: UInt64, position: Int) -> UInt64 { rank << 32 | UInt64(position) }
        for i in 0..<(n - 1) {
            let value = pairValue(scratch.symbols[i], scratch.symbols[i + 1])
            if value != UInt64.max { heapPush(&scratch.heap, entry(rank: value >> 32, position: i)) }
        }
        while let top = heapPop(&scratch.heap) {
            let position = Int(top & 0xFFFF_FFFF)
            let rank = top >> 32
            let right = Int(scratch.next[position])
            if right < 0 || scratch.previous[position] == -2 { continue }
            let value = pairValue(scratch.symbols[position], scratch.symbols[right])
            if value == UInt64.max || value >> 32 != rank { continue }
            scratch.symbols[position] = Int32(truncatingIfNeeded: value & 0xFFFF_FFFF)
            let afterRight = Int(scratch.next[right])
            scratch.next[position] = Int32(afterRight)
            if afterRight >= 0 { scratch.previous[afterRight] = Int32(position) }
            scratch.previous[right] = -2  // removed
            let left = Int(scratch.previous[position])
            if left >= 0 {
                let v = pairValue(scratch.symbols[left], scratch.symbols[position])
                if v != UInt64.max { heapPush(&scratch.heap, entry(rank: v >> 32, position: left)) }
            }
            if afterRight >= 0 {
                let v = pairValue(scratch.symbols[position], scratch.symbols[afterRight])
                if v != UInt64.max { heapPush(&scratch.heap, entry(rank: v >> 32, position: position)) }
            }
        }
        var i = 0
        while i >= 0 {
            output.append(scratch.symbols[i])
            i = Int(scratch.next[i])
        }
    }
}

/// Binary min-heap operations on a plain array (shared by the model and the trainer).
@inline(__always)
func heapPush<T: Comparable>(_ heap: inout [T], _ element: T) {
    heap.append(element)
    var child = heap.count - 1
    while child > 0 {
        let parent = (child - 1) / 2
        if heap[parent] <= element { break }
        heap[child] = heap[parent]
        child = parent
    }
    heap[child] = element
}

@inline(__always)
func heapPop<T: Comparable>(_ heap: inout [T]) -> T? {
    guard let last = heap.popLast() else { return nil }
    if heap.isEmpty { return last }
    let top = heap[0]
    let count = heap.count
    var parent = 0
    while true {
        var child = 2 * parent + 1
        if child >= count { break }
        if child + 1 < count && heap[child + 1] < heap[child] { child += 1 }
        if last <= heap[child] { break }
        heap[parent] = heap[child]
        parent = child
    }
    heap[parent] = last
    return top
}
