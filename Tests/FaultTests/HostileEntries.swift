import SwitchyardModel

/// Entries a careless or hostile writer might put under `/services/`: every one is invalid, and every key
/// or value carries `EVIL` (or `evil`) so that a line taken from it would show in the config.
enum HostileEntries {
  static func generate(count: Int) -> [(key: String, value: [UInt8])] {
    var entries: [(String, [UInt8])] = []
    let good = #"{"address":"10.0.0.9","port":8080,"state":"up","weight":100}"#
    let templates: [String] = [
      #"EVIL not json"#,
      #"{"address":"EVIL host","port":8080}"#,
      #"{"address":"10.0.0.1","port":0,"evil":1}"#,
      #"{"address":"10.0.0.1","port":70000,"evil":1}"#,
      #"{"address":"10.0.0.1","port":-1,"evil":1}"#,
      #"{"address":"10.0.0.1","port":"80","evil":1}"#,
      #"{"address":"10.0.0.1\n  server evil 10.0.0.2:80","port":80}"#,
      #"{"address":"10.0.0.1 check evil","port":80}"#,
      #"{"address":"10.0.0.1","port":80,"check":{"path":"/ HTTP/1.0\r\nX-Evil: 1"}}"#,
      #"{"address":"10.0.0.1","port":80,"check":{"path":"/evil\n  http-request deny"}}"#,
      #"{"address":"10.0.0.1","port":80,"weight":9999,"evil":1}"#,
      #"{"address":"10.0.0.1","port":80,"state":"evil"}"#,
      #"{"address":"0.0.0.0","port":80,"evil":1}"#,
      #"{"address":"10.0.0.1","port":80,"meta":{"evil\nkey":"x"}}"#,
      #"{"address":"10.0.0.1","port":80,"evil":"#,
      #"["evil"]"#,
      #"null"#,
    ]
    let badKeys = [
      "/services/backend/EVIL with spaces", "/services/backend/EVIL\nserver x 1.2.3.4:80",
      "/services/backend/EVIL\"quote", "/services/backend/EVIL'quote", "/services/backend/EVIL/extra/segment",
      "/services/backend/EVIL#comment", "/services/EVIL svc/a", "/services/EVIL\nsvc/a", "/services/EVIL",
    ]
    for index in 0..<count {
      switch index % 4 {
      case 0:
        // Random bytes, control characters and invalid UTF-8 included.
        let bytes = Array("EVIL".utf8) + (0..<Int.random(in: 1...200)).map { _ in UInt8.random(in: 0...255) }
        entries.append(("/services/backend/EVIL\(index)", bytes))
      case 1:
        entries.append(("/services/backend/EVIL\(index)", Array(templates[index % templates.count].utf8)))
      case 2:
        // A valid value under a key that is not a valid instance id.
        let key = badKeys[index % badKeys.count] + "\(index)"
        entries.append((key, Array(good.utf8)))
      default:
        // A valid value with one field made bad by a random printable character.
        var value = Array(good.utf8)
        let position = Int.random(in: 0..<value.count)
        value.insert(UInt8.random(in: 0x20...0x7E), at: position)
        if (try? Registration.parse(value)) != nil { value = Array("EVIL\(index)".utf8) }
        entries.append(("/services/backend/EVIL\(index)", value))
      }
    }
    // Huge values: three of 1.5 MB, as in the issue.
    for index in 0..<3 {
      let huge = #"{"address":"10.0.0.1","port":80,"evil":""# + String(repeating: "A", count: 1_500_000) + #""}"#
      entries.append(("/services/backend/EVILhuge\(index)", Array(huge.utf8)))
    }
    return entries
  }
}
