/// Small text helpers shared by the parsers of CLI replies.
extension StringProtocol {
  /// The text without leading and trailing spaces, tabs, carriage returns and newlines.
  var trimmedWhitespace: SubSequence {
    let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
    guard let start = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else {
      return self[endIndex..<endIndex]
    }
    return self[start...last]
  }

  /// The words separated by runs of spaces or tabs, as HAProxy aligns its tables.
  func whitespaceSeparated() -> [SubSequence] {
    split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
  }

  /// The lines, without empty ones and without carriage returns.
  func nonEmptyLines() -> [SubSequence] {
    split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).filter { !$0.trimmedWhitespace.isEmpty }
  }
}

/// Byte-level splitting for the large tables (`show servers state`, `show servers conn`): their replies
/// are ASCII, and splitting by `Character` costs grapheme breaking on every byte of thousands of rows.
extension Substring {
  /// The words separated by runs of spaces, tabs or carriage returns, split byte by byte.
  func asciiFields() -> [Substring] {
    var fields: [Substring] = []
    var start: Index?
    var index = utf8.startIndex
    while index != utf8.endIndex {
      let byte = utf8[index]
      if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
        if let first = start {
          fields.append(self[first..<index])
          start = nil
        }
      } else if start == nil {
        start = index
      }
      index = utf8.index(after: index)
    }
    if let first = start { fields.append(self[first..<utf8.endIndex]) }
    return fields
  }
}

extension String {
  /// The lines that hold more than spaces, tabs and carriage returns, split byte by byte.
  func asciiLines() -> [Substring] {
    utf8.split(separator: UInt8(ascii: "\n")).map { Substring($0) }.filter { line in
      line.utf8.contains { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\r") }
    }
  }
}

/// One row of a Runtime API table, kept as printed, with its header's column names (shared by every row).
struct TableRow: Sendable, Hashable {
  let names: [String]
  let line: String

  /// Every column by its header name; columns missing at the end of the row are absent.
  var fields: [String: String] {
    Dictionary(zip(names, Substring(line).asciiFields().map(String.init)), uniquingKeysWith: { first, _ in first })
  }
}
