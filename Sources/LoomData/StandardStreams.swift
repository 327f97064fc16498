import Foundation

/// Progress and log lines for standard error that can never stop a command.
///
/// `FileHandle.write(_: Data)` traps on Linux when the write fails (`ENOSPC` on `2>/dev/full`,
/// `EPIPE` on a closed pipe), turning a lost log line into a crash. A diagnostic that cannot be
/// shown is not worth failing a training run for, so these writes drop the text on error;
/// results on standard output and files are written with `write(contentsOf:)` and their
/// errors propagate.
public enum StandardError {
    /// Writes `text` as it is (no newline added); errors are ignored.
    public static func write(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }

    /// Writes `text` and a newline; errors are ignored.
    public static func writeLine(_ text: String) {
        write(text + "\n")
    }
}

/// Results for standard output (generated text, token ids, JSON summaries): a failed write is
/// an error, so `loom generate >/dev/full` stops with a message and a non-zero exit instead of
/// trapping (`FileHandle.write(_: Data)`) or exiting 0 with the output lost (`print`, whose
/// buffered errors nobody sees).
public enum StandardOutput {
    /// Writes `text` unbuffered; throws `StandardOutputError` on failure.
    public static func write(_ text: String) throws {
        guard !text.isEmpty else { return }
        do {
            try FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
        } catch {
            throw StandardOutputError(reason: describeIOError(error))
        }
    }

    /// Writes `text` and a newline.
    public static func writeLine(_ text: String) throws {
        try write(text + "\n")
    }
}

/// Standard output could not be written (a full disk, a closed pipe).
public struct StandardOutputError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "cannot write to standard output: \(reason)" }
}

/// The system's words for an I/O error ("No space left on device", "Broken pipe"): Foundation's
/// `localizedDescription` of a POSIX error says only "The operation could not be completed".
public func describeIOError(_ error: Error) -> String {
    let nsError = error as NSError
    if nsError.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(nsError.code))) }
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    return nsError.localizedDescription
}
