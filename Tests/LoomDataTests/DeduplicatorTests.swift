import Foundation
import XCTest
@testable import LoomData

final class DeduplicatorTests: XCTestCase {
    static let hamlet = """
    To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer \
    the slings and arrows of outrageous fortune, or to take arms against a sea of troubles \
    and by opposing end them. To die, to sleep, no more; and by a sleep to say we end \
    the heart-ache and the thousand natural shocks that flesh is heir to: 'tis a consummation \
    devoutly to be wish'd. To die, to sleep; to sleep, perchance to dream, ay, there's the rub: \
    for in that sleep of death what dreams may come, when we have shuffled off this mortal coil, \
    must give us pause. There's the respect that makes calamity of so long life.
    """
    static let genesis = """
    In the beginning God created the heaven and the earth. And the earth was without form, \
    and void; and darkness was upon the face of the deep. And the Spirit of God moved upon \
    the face of the waters. And God said, Let there be light: and there was light. And God \
    saw the light, that it was good: and God divided the light from the darkness. And God \
    called the light Day, and the darkness he called Night. And the evening and the morning \
    were the first day.
    """

    func testExactDuplicatesUpToWhitespace() {
        let docs = [
            Document(text: Self.hamlet, position: 1),
            Document(text: Self.genesis, position: 2),
            Document(text: Self.hamlet.replacingOccurrences(of: " ", with: "  "), position: 3),
        ]
        var options = DedupOptions()
        options.near = false
        let (kept, report) = Deduplicator(options: options).deduplicate(docs)
        XCTAssertEqual(kept.map(\.position), [1, 2])
        XCTAssertEqual(report.exactDuplicates, 1)
    }

    func testNearDuplicateWithAFewWordsChangedIsCaughtADifferentDocumentIsNot() {
        let edited = Self.hamlet
            .replacingOccurrences(of: "outrageous", with: "outragious")
            .replacingOccurrences(of: "calamity", with: "calamitie")
        let hasher = MinHasher()
        XCTAssertGreaterThan(hasher.jaccard(Self.hamlet, edited), 0.8)
        XCTAssertLessThan(hasher.jaccard(Self.hamlet, Self.genesis), 0.05)
        let docs = [
            Document(text: Self.hamlet, position: 1),
            Document(text: Self.genesis, position: 2),
            Document(text: edited, position: 3),
        ]
        let (kept, report) = Deduplicator().deduplicate(docs, origin: { "doc\($0.position)" })
        XCTAssertEqual(kept.map(\.position), [1, 2], "keeps the first in input order")
        XCTAssertEqual(report.nearDuplicates, 1)
        XCTAssertEqual(report.exactDuplicates, 0)
        XCTAssertEqual(report.nearDuplicateExamples.first?.kept, "doc1")
        XCTAssertEqual(report.nearDuplicateExamples.first?.removed, "doc3")
        XCTAssertGreaterThanOrEqual(report.nearDuplicateExamples.first?.estimatedJaccard ?? 0, 0.8)
    }

    func testChineseUsesCharacterShinglesAndKeepsDifferentPoems() {
        let poem = "床前明月光，疑是地上霜。举头望明月，低头思故乡。此诗写于远客他乡的秋夜，诗人望月而思念故乡，情真意切，千古传诵不衰。"
            + "诗中没有奇特新颖的想象，也没有精工华美的辞藻，只是用叙述的语气，写远客思乡之情，然而它却意味深长，耐人寻绎。"
        let variant = poem.replacingOccurrences(of: "千古", with: "万古")
        let other = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。此诗写登楼远望之景，气势雄浑，寓意深远，为五言绝句中的名篇。"
            + "前两句写所见，后两句写所想，诗人站得高看得远，道出了要想看得更远就要站得更高的朴素道理。"
        XCTAssertTrue(MinHasher.units(poem).mostlyCJK)
        let (kept, report) = Deduplicator().deduplicate([
            Document(text: poem, position: 1), Document(text: other, position: 2), Document(text: variant, position: 3),
        ])
        XCTAssertEqual(kept.map(\.position), [1, 2])
        XCTAssertEqual(report.nearDuplicates, 1)
    }

    func testSignaturesAreDeterministicAndSeeded() {
        XCTAssertEqual(MinHasher(seed: 1).signature(Self.hamlet), MinHasher(seed: 1).signature(Self.hamlet))
        XCTAssertNotEqual(MinHasher(seed: 1).signature(Self.hamlet), MinHasher(seed: 2).signature(Self.hamlet))
        XCTAssertEqual(MinHasher().signature("!!! ...").count, 0)
    }
}
