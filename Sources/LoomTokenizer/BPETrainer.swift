// Training a byte-level BPE vocabulary.

extension ByteLevelBPETokenizer {
    /// Trains a tokenizer on `texts`.
    ///
    /// Ids: `specialTokens` first (0, 1, 2, … in the given order), then the 256 single bytes
    /// in byte order, then one id per learned token. `vocabSize` counts all of them; training
    /// stops early if the corpus runs out of pairs. Special-token text occurring in `texts` is
    /// cut out before counting, so no merges are learned across it. The pre-tokenizer is
    /// `PreTokenizerPattern.loom`.
    ///
    /// Training is deterministic: of pairs with equal counts the one with the smaller
    /// (left id, right id) is merged first, so the same texts always give the same file.
    /// `progress` receives the fraction of merges done, at most about a hundred times.
    public static func train(
        texts: [String],
        vocabSize: Int,
        specialTokens: [String] = ByteLevelBPETokenizer.defaultSpecialTokens,
        progress: ((Double) -> Void)? = nil
    ) -> ByteLevelBPETokenizer {
        let parts = BPETrainer.train(texts: texts, vocabSize: vocabSize, specialTokens: specialTokens, progress: progress)
        // The parts are built consistently by the trainer, so compiling them cannot fail.
        return try! ByteLevelBPETokenizer(parts: parts, file: "<trained>")
    }
}

/// The trainer: count each distinct pre-token once, then merge pair by pair while keeping the
/// pair counts up to date incrementally.
///
/// After the one pass over the text, the work per merge is proportional to the number of
/// distinct words that contain the merged pair, not to the corpus: each pair remembers the
/// words it occurs in, and merging rewrites only those words, adjusting the counts of the
/// pairs on either side of each occurrence. The best pair comes from a max-heap whose entries
/// may be stale (counts only fall, except for pairs containing the new token, which are
/// pushed afresh); a popped entry whose count no longer matches is re-pushed with the true
/// count — the "lazy" scheme Hugging Face's trainer also uses.
enum BPETrainer {
    struct HeapEntry: Comparable {
        var count: Int
        var pair: UInt64
        /// "Smaller" means "merge first": higher count, then smaller pair.
        static func < (a: HeapEntry, b: HeapEntry) -> Bool {
            a.count != b.count ? a.count > b.count : a.pair < b.pair
        }
    }

    static func train(texts: [String], vocabSize: Int, specialTokens: [String], progress: ((Double) -> Void)?) -> TokenizerParts {
        // 1. Distinct pre-tokens and their frequencies.
        var wordTable = ByteStringMap(minimumCapacity: 1 << 14)
        var wordCounts: [Int] = []
        let preTokenizer = PreTokenizer(pattern: .loom)
        let scratch = PreTokenizer.Scratch()
        let specialMatcher = AddedTokenMatcher(specialTokens.enumerated().map { AddedToken(id: $0.offset, content: $0.element, special: true) })
        func countWords(_ text: UnsafeBufferPointer<UInt8>) {
            guard let base = text.baseAddress, !text.isEmpty else { return }
            preTokenizer.split(text, scratch: scratch) { start, end in
                let word = base + start, length = end - start
                let hash = hashBytes(word, length)
                if let entry = wordTable.find(word, length, hash: hash) {
                    wordCounts[entry] += 1
                } else {
                    var index = Int32(wordCounts.count)
                    _ = withUnsafePointer(to: &index) { wordTable.insert(word, length, hash: hash, values: UnsafeBufferPointer(start: $0, count: 1)) }
                    wordCounts.append(1)
                }
            }
        }
        for var text in texts {
            text.withUTF8 { utf8 in
                var segmentStart = 0
                specialMatcher.forEachMatch(in: utf8) { start, end, _ in
                    countWords(UnsafeBufferPointer(rebasing: utf8[segmentStart..<start]))
                    segmentStart = end
                }
                countWords(UnsafeBufferPointer(rebasing: utf8[segmentStart...]))
            }
        }

        // 2. Initial vocabulary: special tokens, then bytes.
        let firstByteID = specialTokens.count
        var tokenBytes: [[UInt8]] = specialTokens.map { Array($0.utf8) }
        var idOfBytes: [[UInt8]: Int32] = [:]
        for byte in 0..<256 {
            idOfBytes[[UInt8(byte)]] = Int32(tokenBytes.count)
            tokenBytes.append([UInt8(byte)])
        }
        var words: [[Int32]] = (0..<wordCounts.count).map { entry in
            wordTable.key(of: entry).map { Int32(firstByteID) + Int32($0) }
        }

        // 3. Pair statistics: count and the words each pair occurs in.
        var pairIndex = PairMap(minimumCapacity: 1 << 14)
        var pairCounts: [Int] = []
        var pairWords: [[Int32]] = []
        var pairKeys: [UInt64] = []
        @inline(__always) func index(of key: UInt64) -> Int {
            if let i = pairIndex.get(key) { return Int(i) }
            let i = pairCounts.count
            pairIndex.set(key, UInt64(i))
            pairCounts.append(0)
            pairWords.append([])
            pairKeys.append(key)
            return i
        }
        for (w, symbols) in words.enumerated() where symbols.count > 1 {
            let count = wordCounts[w]
            for i in 0..<(symbols.count - 1) {
                let p = index(of: PairMap.key(symbols[i], symbols[i + 1]))
                pairCounts[p] += count
                if pairWords[p].last != Int32(w) { pairWords[p].append(Int32(w)) }
            }
        }
        var heap: [HeapEntry] = []
        heap.reserveCapacity(pairCounts.count)
        for p in 0..<pairCounts.count where pairCounts[p] > 0 { heapPush(&heap, HeapEntry(count: pairCounts[p], pair: pairKeys[p])) }

        // 4. Merge until the vocabulary is full.
        var merges: [(Int32, Int32)] = []
        let target = max(vocabSize, tokenBytes.count)
        let mergesWanted = max(1, target - tokenBytes.count)
        var wordStamp = [Int](repeating: -1, count: words.count)
        var touchedStamp: [Int] = []
        var touched: [Int] = []
        var lastReported = -1
        var step = 0
        while tokenBytes.count < target, let top = heapPop(&heap) {
            let p = Int(pairIndex.get(top.pair)!)
            let current = pairCounts[p]
            if current != top.count {
                if current > 0 { heapPush(&heap, HeapEntry(count: current, pair: top.pair)) }
                continue
            }
            if current <= 0 { break }
            let a = Int32(truncatingIfNeeded: top.pair >> 32), b = Int32(truncatingIfNeeded: top.pair & 0xFFFF_FFFF)
            let newBytes = tokenBytes[Int(a)] + tokenBytes[Int(b)]
            let c: Int32
            if let existing = idOfBytes[newBytes] {
                c = existing  // the same string reached through another split: reuse its id
            } else {
                c = Int32(tokenBytes.count)
                tokenBytes.append(newBytes)
                idOfBytes[newBytes] = c
            }
            merges.append((a, b))
            step += 1
            touched.removeAll(keepingCapacity: true)

            func adjust(_ left: Int32, _ right: Int32, by delta: Int, word: Int32) {
                let q = index(of: PairMap.key(left, right))
                pairCounts[q] += delta
                if delta > 0 {
                    if pairWords[q].last != word { pairWords[q].append(word) }
                    if q >= touchedStamp.count { touchedStamp += [Int](repeating: -1, count: q + 1 - touchedStamp.count + 1024) }
                    if touchedStamp[q] != step { touchedStamp[q] = step; touched.append(q) }
                }
            }

            let occurrences = pairWords[p]
            pairWords[p] = []
            for w32 in occurrences {
                let w = Int(w32)
                if wordStamp[w] == step { continue }
                wordStamp[w] = step
                let count = wordCounts[w]
                var symbols = words[w]
                words[w] = []
                let n = symbols.count
                var read = 0, write = 0
                while read < n {
                    if read + 1 < n && symbols[read] == a && symbols[read + 1] == b {
                        // Neighbours: the already-rewritten symbol on the left, the original on the right.
                        if write > 0 {
                            adjust(symbols[write - 1], a, by: -count, word: w32)
                            adjust(symbols[write - 1], c, by: count, word: w32)
                        }
                        if read + 2 < n {
                            adjust(b, symbols[read + 2], by: -count, word: w32)
                            adjust(c, symbols[read + 2], by: count, word: w32)
                        }
                        pairCounts[p] -= count
                        symbols[write] = c
                        write += 1
                        read += 2
                    } else {
                        symbols[write] = symbols[read]
                        write += 1
                        read += 1
                    }
                }
                symbols.removeLast(n - write)
                words[w] = symbols
            }
            for q in touched where pairCounts[q] > 0 {
                heapPush(&heap, HeapEntry(count: pairCounts[q], pair: pairKeys[q]))
            }
            if let progress {
                let percent = min(100, merges.count * 100 / mergesWanted)
                if percent != lastReported { lastReported = percent; progress(Double(percent) / 100) }
            }
        }
        if let progress, lastReported != 100 { progress(1) }

        // 5. As tokenizer.json parts.
        var vocab: [String: Int] = [:]
        for (id, bytes) in tokenBytes.enumerated() {
            vocab[id < firstByteID ? specialTokens[id] : ByteLevel.encode(bytes)] = id
        }
        let spelled = merges.map { (left: ByteLevel.encode(tokenBytes[Int($0.0)]), right: ByteLevel.encode(tokenBytes[Int($0.1)])) }
        var parts = TokenizerParts(
            modelVocab: vocab, merges: spelled,
            addedTokens: specialTokens.enumerated().map { AddedToken(id: $0.offset, content: $0.element, special: true) },
            pattern: .loom)
        parts.eosToken = specialTokens.contains("<|endoftext|>") ? "<|endoftext|>" : specialTokens.first
        parts.bosToken = parts.eosToken
        parts.padToken = specialTokens.contains("<|pad|>") ? "<|pad|>" : nil
        parts.chatTemplateJinja = ChatTemplate.chatML.jinja
        return parts
    }
}
