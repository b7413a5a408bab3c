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
