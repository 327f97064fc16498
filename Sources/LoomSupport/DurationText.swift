/// Durations for people: progress bars, ETAs and stage timings.
public enum DurationText {
    /// "4.2s" below a minute, "1m05s" below an hour, "2h03m" from there; "?" for a negative or
    /// non-finite value (an ETA before any step has been timed).
    public static func format(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 59.95 { return String(format: "%.1fs", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return "\(whole / 60)m\(twoDigits(whole % 60))s" }
        return "\(whole / 3600)h\(twoDigits(whole / 60 % 60))m"
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
