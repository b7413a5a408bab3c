/// Escapes bytes from outside (a request's method and path) for a text log line and for JSON.
///
/// Both read the bytes as UTF-8 and never copy a byte that could end the line, end the value, or change how a
/// terminal shows the rest: control characters (C0, DEL, C1), Unicode format characters (bidirectional
/// overrides, zero-width characters) and the line and paragraph separators are escaped, and so is every byte
/// that is not part of valid UTF-8.
public enum LogEscaping {
  /// Appends `value` as a logfmt value: as it is when it is printable ASCII without a space, `"`, `=` or `\`
  /// (and not empty); otherwise quoted, with `\"`, `\\`, `\n`, `\r`, `\t`, `\xHH` for any other control byte
  /// and for a byte that is not UTF-8, and `\u{XXXX}` for an invisible or line-breaking character. The result
  /// can be read back without loss.
  public static func appendTextValue(_ value: some Collection<UInt8>, to line: inout [UInt8]) {
    let bytes = Array(value)
    if !bytes.isEmpty, bytes.allSatisfy(isBare) {
      line += bytes
      return
    }
    line.append(UInt8(ascii: "\""))
    forEachScalar(bytes) { scalar, encoded in
      switch scalar {
      case nil:
        for byte in encoded {
          line += "\\x".utf8
          line += hex(byte, digits: 2)
        }
      case "\"": line += "\\\"".utf8
      case "\\": line += "\\\\".utf8
      case "\n": line += "\\n".utf8
      case "\r": line += "\\r".utf8
      case "\t": line += "\\t".utf8
      case let scalar? where scalar.value < 0x80 && isUnsafe(scalar):
        line += "\\x".utf8
        line += hex(UInt8(scalar.value), digits: 2)
      case let scalar? where isUnsafe(scalar):
        line += "\\u{".utf8
        line += hex(scalar.value)
        line.append(UInt8(ascii: "}"))
      default: line += encoded
      }
    }
    line.append(UInt8(ascii: "\""))
  }

  /// Appends `value` as a JSON string, quotes included. Bytes that are not valid UTF-8 become U+FFFD, one
  /// for each ill-formed part as Swift's own decoding does (JSON strings hold characters, not bytes); `"`, `\` and every control, format and separator
  /// character is escaped (`\"`, `\\`, `\n`, `\u001B`, `\u2028`, …).
  public static func appendJSONString(_ value: some Collection<UInt8>, to line: inout [UInt8]) {
    line.append(UInt8(ascii: "\""))
    forEachScalar(Array(value)) { scalar, encoded in
      switch scalar {
      case nil: line += "\\ufffd".utf8
      case "\"": line += "\\\"".utf8
      case "\\": line += "\\\\".utf8
      case "\n": line += "\\n".utf8
      case "\r": line += "\\r".utf8
      case "\t": line += "\\t".utf8
      case let scalar? where isUnsafe(scalar):
        if scalar.value > 0xFFFF {
          // Outside the basic plane: a UTF-16 surrogate pair.
          let offset = scalar.value - 0x10000
          appendJSONEscape(0xD800 + (offset >> 10), to: &line)
          appendJSONEscape(0xDC00 + (offset & 0x3FF), to: &line)
        } else {
          appendJSONEscape(scalar.value, to: &line)
        }
      default: line += encoded
      }
    }
    line.append(UInt8(ascii: "\""))
  }

  private static func appendJSONEscape(_ value: UInt32, to line: inout [UInt8]) {
    line += "\\u".utf8
    line += hex(value, digits: 4)
  }

  /// Printable ASCII that a logfmt value may hold unquoted.
  private static func isBare(_ byte: UInt8) -> Bool {
    byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "=")
      && byte != UInt8(ascii: "\\")
  }

  /// Characters that must not reach a log line as they are: controls, format characters, separators.
  static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate: true
    default: false
    }
  }

  /// Calls `body` for each UTF-8 character of `bytes` with the character and its bytes, and with nil and the
  /// bytes of each maximal ill-formed part (the longest start of a valid sequence, else one byte), as
  /// Unicode recommends and Swift's own decoding does: overlong forms, surrogates and values past U+10FFFF
  /// are not valid.
  static func forEachScalar(_ bytes: [UInt8], _ body: (Unicode.Scalar?, ArraySlice<UInt8>) -> Void) {
    var index = 0
    while index < bytes.count {
      let (length, valid) = sequence(bytes, at: index)
      let encoded = bytes[index..<index + length]
      guard valid else {
        body(nil, encoded)
        index += length
        continue
      }
      var value = UInt32(bytes[index])
      if length > 1 {
        value &= UInt32(0xFF >> (length + 1))
        for byte in encoded.dropFirst() { value = value << 6 | UInt32(byte & 0x3F) }
      }
      body(Unicode.Scalar(value), encoded)
      index += length
    }
  }

  /// The sequence that starts at `index`: its length and whether it is a valid one (Unicode's table 3-7),
  /// or the length of the ill-formed part.
  static func sequence(_ bytes: [UInt8], at index: Int) -> (length: Int, valid: Bool) {
    let lead = bytes[index]
    let count: Int
    var second: ClosedRange<UInt8> = 0x80...0xBF
    switch lead {
    case 0x00...0x7F: return (1, true)
    case 0xC2...0xDF: count = 2
    case 0xE0:
      count = 3
      second = 0xA0...0xBF
    case 0xE1...0xEC, 0xEE...0xEF: count = 3
    case 0xED:
      count = 3
      second = 0x80...0x9F
    case 0xF0:
      count = 4
      second = 0x90...0xBF
    case 0xF1...0xF3: count = 4
    case 0xF4:
      count = 4
      second = 0x80...0x8F
    default: return (1, false)
    }
    for offset in 1..<count {
      let range = offset == 1 ? second : 0x80...0xBF
      guard index + offset < bytes.count, range.contains(bytes[index + offset]) else { return (offset, false) }
    }
    return (count, true)
  }

  /// Upper-case hex digits of `value`, at least `digits` of them.
  private static func hex(_ value: some BinaryInteger, digits: Int = 1) -> [UInt8] {
    let text = String(value, radix: 16, uppercase: true)
    return Array((String(repeating: "0", count: max(0, digits - text.count)) + text).utf8)
  }
}
