import Foundation
import Logging
import Synchronization

/// Writes one JSON object per log record to standard error, for log shippers:
/// `{"label":"…","level":"info","message":"…","metadata":{…},"source":"…","time":"2026-11-25T10:00:00.000Z"}`.
struct JSONLogHandler: LogHandler {
  let label: String
  var logLevel: Logger.Level = .info
  var metadata: Logger.Metadata = [:]
  var metadataProvider: Logger.MetadataProvider?

  private static let output = Mutex<FileHandle>(FileHandle.standardError)

  init(label: String, level: Logger.Level) {
    self.label = label
    logLevel = level
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    var merged = metadata
    if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
    if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
    if let error = event.error { merged["error"] = "\(error)" }
    let line = Self.encode(
      time: Date(),
      level: event.level,
      label: label,
      message: event.message.description,
      source: event.source,
      metadata: merged
    )
    Self.output.withLock { $0.write(Data(line.utf8)) }
  }

  /// One record as a JSON line with sorted keys.
  static func encode(
    time: Date,
    level: Logger.Level,
    label: String,
    message: String,
    source: String,
    metadata: Logger.Metadata
  ) -> String {
    var object: [String: Any] = [
      "time": time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
      "level": level.rawValue,
      "label": label,
      "message": message,
      "source": source,
    ]
    if !metadata.isEmpty { object["metadata"] = metadata.mapValues(jsonValue) }
    let data =
      (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
    switch value {
    case .string(let text): text
    case .stringConvertible(let convertible): convertible.description
    case .array(let values): values.map(jsonValue)
    case .dictionary(let dictionary): dictionary.mapValues(jsonValue)
    }
  }
}
