import Foundation
import LoomSupport

/// The pipeline's report card: Markdown for people (`report.md`, with SVG charts beside
/// it) and the same figures as JSON for programs (`report.json`).
public final class PipelineReport {
    public let directory: URL
    /// Figures by stage, written to report.json.
    public var figures: [String: [String: Any]] = [:]
    public var seconds: Double = 0
    private var sections: [(title: String, body: String)] = []

    public init(directory: URL) { self.directory = directory }

    public func set(_ stage: String, _ key: String, _ value: Any) {
        figures[stage, default: [:]][key] = value
    }

    public func section(_ title: String, _ body: String) {
        sections.append((title, body))
    }

    /// Replaces the section with this title (or appends it), so a table can grow as stages finish.
    public func replaceSection(_ title: String, _ body: String) {
        if let i = sections.firstIndex(where: { $0.title == title }) { sections[i].body = body } else { sections.append((title, body)) }
    }

    /// Saves a chart as `name.svg` and returns the Markdown that shows it.
    public func chart(_ name: String, _ chart: LineChart) throws -> String {
        try AtomicFile.write(Data(chart.svg().utf8), to: directory.appendingPathComponent("\(name).svg"))
        return "![\(chart.title)](\(name).svg)"
    }

    public func write() throws {
        var json = figures as [String: Any]
        json["seconds"] = seconds
        // JSON has no NaN or infinity: such a figure (an accuracy over no problems, say) is
        // written as null rather than losing the whole file.
        let data = try JSONSerialization.data(withJSONObject: Self.finite(json), options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: directory.appendingPathComponent("report.json"))
        var md = "# Loom pipeline report\n\nTotal time: \(String(format: "%.0f", seconds)) s.\n"
        for s in sections { md += "\n## \(s.title)\n\n\(s.body)\n" }
        try AtomicFile.write(Data(md.utf8), to: directory.appendingPathComponent("report.md"))
    }
}

extension PipelineReport {
    /// `value` with every non-finite number (at any depth) replaced by null.
    static func finite(_ value: Any) -> Any {
        switch value {
        case let d as Double: return d.isFinite ? d : NSNull()
        case let f as Float: return f.isFinite ? Double(f) : NSNull()
        case let dictionary as [String: Any]: return dictionary.mapValues(finite)
        case let array as [Any]: return array.map(finite)
        default: return value
        }
    }
}

/// A Markdown table.
public func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
    var s = "| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in "---" }.joined(separator: "|") + "|\n"
    for r in rows { s += "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }.joined(separator: " | ") + " |\n" }
    return s
}
