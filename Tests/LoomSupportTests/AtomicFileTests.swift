import Foundation
import XCTest
@testable import LoomSupport

final class AtomicFileTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("loom-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path)
        try? FileManager.default.removeItem(at: folder)
    }

    private func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(AtomicFile.temporaryMarker) }
    }

    func testWritesReplacesAndCreatesTheFolder() throws {
        let file = folder.appendingPathComponent("a/b/state.json")
        try AtomicFile.write(Data("one".utf8), to: file)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "one")
        try AtomicFile.write(Data("two, longer".utf8), to: file, durable: true)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "two, longer")
        try AtomicFile.write(to: file) { handle in
            try handle.write(contentsOf: Data("three".utf8))
            try handle.write(contentsOf: Data(" parts".utf8))
        }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "three parts")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path), ["state.json"])
    }

    /// A write that fails part-way (the streaming closure throws) keeps the old file and
    /// leaves no temporary file behind.
    func testFailedWriteKeepsTheOldFile() throws {
        struct Interrupted: Error {}
        let file = folder.appendingPathComponent("model.bin")
        try AtomicFile.write(Data("old".utf8), to: file)
        XCTAssertThrowsError(try AtomicFile.write(to: file) { handle in
            try handle.write(contentsOf: Data("half of the new".utf8))
            throw Interrupted()
        }) { error in
            XCTAssertTrue(error is AtomicFileError, "\(error)")
            XCTAssertTrue("\(error)".contains(file.path), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "old")
        XCTAssertEqual(try leftovers(), [])
    }

    /// In a folder that cannot be written, the write fails with an error naming the file and
    /// the old file is intact.
    func testUnwritableFolderKeepsTheOldFile() throws {
        let file = folder.appendingPathComponent("config.json")
        try AtomicFile.write(Data("{\"old\":1}".utf8), to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: folder.path)
        if FileManager.default.isWritableFile(atPath: folder.path) {
            throw XCTSkip("running as a user who can write to a read-only folder (root)")
        }
        XCTAssertThrowsError(try AtomicFile.write(Data("{\"new\":2}".utf8), to: file)) { error in
            XCTAssertTrue("\(error)".contains(file.path), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "{\"old\":1}")
        XCTAssertEqual(try leftovers(), [])
    }

    /// A target that is a folder cannot be replaced: the rename fails, nothing is left behind.
    func testRenameFailureRemovesTheTemporaryFile() throws {
        let target = folder.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: target.appendingPathComponent("inside"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: target)) { error in
            XCTAssertTrue("\(error)".contains("rename"), "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: target.appendingPathComponent("inside").path))
        XCTAssertEqual(try leftovers(), [])
    }

    func testSyncNamesAMissingPath() {
        let missing = folder.appendingPathComponent("missing").path
        XCTAssertThrowsError(try AtomicFile.sync(missing, isDirectory: false)) { error in
            XCTAssertTrue("\(error)".contains(missing), "\(error)")
        }
        XCTAssertNoThrow(try AtomicFile.sync(folder.path, isDirectory: true))
    }
}
