import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Files replaced in one step: the contents go to a temporary file beside the target, which is
/// then renamed over it, so a reader sees the old file or the new one and never half of one.
/// When anything fails the temporary file is removed and the old file is left as it was.
public enum AtomicFile {
    /// The prefix and infix of temporary files (`.NAME.tmp-PID-RANDOM`): a crashed writer leaves
    /// one behind, and cleanup code recognises them by `temporaryMarker`.
    public static let temporaryMarker = ".tmp-"

    /// Writes `data` to `url` atomically. With `durable`, the temporary file is fsync'd before
    /// the rename and the directory after it, so the new file also survives a power loss.
    public static func write(_ data: Data, to url: URL, durable: Bool = false) throws {
        try write(to: url, durable: durable) { handle in try handle.write(contentsOf: data) }
    }

    /// Writes `url` atomically from `contents`, which streams into the temporary file's handle
    /// (large files written without building them in memory). `durable` as above.
    public static func write(to url: URL, durable: Bool = false, contents: (FileHandle) throws -> Void) throws {
        let directory = url.deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw AtomicFileError(path: url.path, "cannot create the folder \(directory.path): \(error.localizedDescription)")
        }
        let temporary = directory.appendingPathComponent(
            ".\(url.lastPathComponent)\(temporaryMarker)\(getpid())-\(UInt32.random(in: 0 ... .max))")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw AtomicFileError(path: url.path, "cannot create the temporary file \(temporary.path): \(String(cString: strerror(errno)))")
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            do {
                try contents(handle)
                if durable { try handle.synchronize() }
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            guard rename(temporary.path, url.path) == 0 else {
                throw AtomicFileError(path: url.path, "cannot rename \(temporary.path) into place: \(String(cString: strerror(errno)))")
            }
        } catch let error as AtomicFileError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw AtomicFileError(path: url.path, "cannot write the file: \(error.localizedDescription)")
        }
        if durable {
            do { try sync(directory.path, isDirectory: true) } catch let error as AtomicFileError {
                throw AtomicFileError(path: url.path, "written, but its folder: \(error.description)")
            }
        }
    }

    /// fsync of a file or a directory, with an error naming it. Some file systems refuse fsync
    /// on a directory (EINVAL); there it is not needed.
    public static func sync(_ path: String, isDirectory: Bool) throws {
        let fd = open(path, isDirectory ? O_RDONLY | O_DIRECTORY : O_RDONLY)
        guard fd >= 0 else { throw AtomicFileError(path: path, "cannot open it to sync it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 || (isDirectory && errno == EINVAL) else {
            throw AtomicFileError(path: path, "cannot sync it to disk: \(String(cString: strerror(errno)))")
        }
    }
}

/// A file that could not be written, synced or renamed into place; the description names it.
public struct AtomicFileError: Error, CustomStringConvertible, LocalizedError {
    /// The file (or folder) concerned.
    public let path: String
    /// What went wrong.
    public let reason: String

    public init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
    public var errorDescription: String? { description }
}
