import Foundation

/// A small SVG line chart (no dependencies), for loss and reward curves in reports.
public struct LineChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public init(name: String, points: [(x: Double, y: Double)], color: String) {
            self.name = name; self.points = points; self.color = color
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
    }

    public func svg(width: Double = 640, height: Double = 360) -> String {
        let left = 60.0, right = 20.0, top = 36.0, bottom = 44.0
        let all = series.flatMap(\.points).filter { $0.y.isFinite }
        guard let minX = all.map(\.x).min(), let maxX = all.map(\.x).max(),
              let minYRaw = all.map(\.y).min(), let maxYRaw = all.map(\.y).max() else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"40\"><text x=\"10\" y=\"25\">\(escape(title)): no data</text></svg>"
        }
        let pad = max((maxYRaw - minYRaw) * 0.05, 1e-6)
        let minY = minYRaw - pad, maxY = maxYRaw + pad
        func px(_ x: Double) -> Double { left + (x - minX) / max(maxX - minX, 1e-9) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (maxY - y) / max(maxY - minY, 1e-9) * (height - top - bottom) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(width / 2)\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        for i in 0...4 {
            let y = minY + (maxY - minY) * Double(i) / 4
            out += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(py(y))\" y2=\"\(py(y))\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(left - 6)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(String(format: "%.3g", y))</text>\n"
            let x = minX + (maxX - minX) * Double(i) / 4
            out += "<text x=\"\(px(x))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(String(format: "%.4g", x))</text>\n"
        }
        out += "<text x=\"\(width / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        out += "<text x=\"14\" y=\"\(height / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(height / 2))\">\(escape(yLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let path = s.points.filter { $0.y.isFinite }.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            out += "<text x=\"\(width - right - 4)\" y=\"\(top + 14 + Double(i) * 16)\" text-anchor=\"end\" fill=\"\(s.color)\">\(escape(s.name))</text>\n"
        }
        return out + "</svg>\n"
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

/// A one-line sparkline of values (for terminal and Markdown summaries).
public func sparkline(_ values: [Double]) -> String {
    let ticks = Array("▁▂▃▄▅▆▇█")
    let finite = values.filter(\.isFinite)
    guard let lo = finite.min(), let hi = finite.max() else { return "" }
    return String(values.map { v in
        guard v.isFinite else { return " " }
        let i = hi > lo ? Int((v - lo) / (hi - lo) * Double(ticks.count - 1)) : 0
        return ticks[i]
    })
}
