import Foundation

/// Parsing of names into the cases of a string-backed enum (task kinds in recipes and flags),
/// with an error that names the unknown value and lists the known ones.
public enum NamedCases {
    /// The cases named by `names`, in order; `what` names the kind of value in errors ("task
    /// kind"). Throws `UnknownNameError` at the first name that is no case's raw value.
    public static func parse<Value: CaseIterable & RawRepresentable>(_ names: [String], as type: Value.Type = Value.self,
                                                                      what: String) throws -> [Value] where Value.RawValue == String {
        try names.map { name in
            guard let value = Value(rawValue: name) else {
                throw UnknownNameError(what: what, name: name, known: Value.allCases.map(\.rawValue))
            }
            return value
        }
    }

    /// The names in a comma-separated list, trimmed of spaces, empty items dropped
    /// ("a, b,," → ["a", "b"]).
    public static func splitList(_ list: String) -> [String] {
        list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// A name that is none of the known ones.
public struct UnknownNameError: Error, CustomStringConvertible {
    /// What kind of value was expected ("task kind").
    public let what: String
    /// The name given.
    public let name: String
    /// The names accepted.
    public let known: [String]

    public var description: String { "unknown \(what) \"\(name)\"; known: \(known.joined(separator: ", "))" }
}
