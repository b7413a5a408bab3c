import Foundation
import SwiftASN1

/// PEM text split into its blocks, line endings normalized. Text between blocks (openssl's `Bag Attributes`,
/// comments) is skipped; a block that does not end, or whose body is not base64, is a problem.
struct PEMBlock: Sendable, Hashable {
  /// The label: `CERTIFICATE`, `PRIVATE KEY`, ….
  var label: String
  /// Whether the block has RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): an encrypted legacy key.
  var hasHeaders: Bool
  /// The decoded body.
  var der: [UInt8]

  /// The block as canonical PEM: 64-character lines, no trailing newline, no blank line.
  var pem: String { PEMDocument(type: label, derBytes: der).pemString }

  /// Largest PEM input accepted, in bytes: small enough that a record (the chain, JSON-escaped, and the
  /// sealed key in base64) stays within ``CertificateRecord/maxValueBytes``.
  static let maxInputBytes = 48 * 1024
  /// Longest label accepted.
  private static let maxLabelLength = 40

  /// The blocks in `text`; `field` names the input in problems.
  static func parse(_ text: String, field: String) throws(CertificateProblem) -> [PEMBlock] {
    guard text.utf8.count <= maxInputBytes else {
      throw CertificateProblem(field: field, reason: "the \(field) is larger than \(maxInputBytes / 1024) KiB")
    }
    let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
    var blocks: [PEMBlock] = []
    var open: (label: String, body: String, headers: Bool)?
    for (index, rawLine) in normalized.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = rawLine.trimmingCharacters(in: .whitespaces)
      if let current = open {
        if line.hasPrefix("-----END ") {
          guard line == "-----END \(current.label)-----" else {
            throw CertificateProblem(
              field: field,
              reason: "the \(field)'s PEM block \(blocks.count + 1) ends at line \(index + 1) with another label")
          }
          guard let der = Data(base64Encoded: current.body), !der.isEmpty else {
            throw CertificateProblem(
              field: field,
              reason: "the \(field)'s PEM block \(blocks.count + 1) (\(current.label)) is not valid base64")
          }
          blocks.append(PEMBlock(label: current.label, hasHeaders: current.headers, der: Array(der)))
          open = nil
        } else if line.contains(":") {
          open?.headers = true
        } else {
          open?.body += line
        }
      } else if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
        let label = String(line.dropFirst("-----BEGIN ".count).dropLast("-----".count))
        guard !label.isEmpty, label.count <= maxLabelLength,
          label.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || $0 == " " || ("0"..."9").contains($0) })
        else {
          throw CertificateProblem(
            field: field, reason: "the \(field) has a PEM block with an invalid label at line \(index + 1)")
        }
        open = (label, "", false)
      }
    }
    if let current = open {
      throw CertificateProblem(
        field: field, reason: "the \(field)'s PEM block \(blocks.count + 1) (\(current.label)) has no END line")
    }
    return blocks
  }
}
