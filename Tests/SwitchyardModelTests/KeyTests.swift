import Testing

@testable import SwitchyardModel

@Suite("Names and keys")
struct KeyTests {
  @Test(
    "parses registration keys",
    arguments: [
      ("/services/backend/backend-1", "backend", "backend-1"),
      ("/services/web/web_1.a-B", "web", "web_1.a-B"),
      ("/services/a.b/...", "a.b", "..."),
    ]
  )
  func parsesKeys(key: String, service: String, instance: String) throws {
    let parsed = try RegistrationKey(parsing: key)
    #expect(parsed.service.rawValue == service && parsed.instance.rawValue == instance)
    #expect(parsed.path == key && parsed.description == key)
    #expect(
      parsed
        == RegistrationKey(
          service: try ServiceName(validating: service), instance: try InstanceID(validating: instance)))
  }

  @Test("builds keys and prefixes")
  func buildsKeys() throws {
    let key = RegistrationKey(service: .backend, instance: try InstanceID(validating: "b1"))
    #expect(key.path == "/services/backend/b1")
    #expect(RegistrationKey.prefix(for: .backend) == "/services/backend/")
    #expect(RegistrationKey.prefix(for: try ServiceName(validating: "web")) == "/services/web/")
    #expect(key.path.hasPrefix(RegistrationKey.prefix(for: key.service)))
  }

  @Test(
    "refuses keys that are not /services/<service>/<instance-id>",
    arguments: [
      ("/services/backend", nil), ("/services/backend/", "id"), ("/services//x", "service"),
      ("/services/backend/a/b", nil), ("/services/backend/a/", nil), ("/other/backend/a", nil),
      ("services/backend/a", nil), ("//services/backend/a", nil), ("/services/", nil), ("", nil),
      ("/Services/backend/a", nil), ("/services/back end/a", "service"), ("/services/backend/a b", "id"),
      ("/services/backend/a\nb", "id"), ("/services/backend\n/a", "service"), ("/services/backend/a\r", "id"),
      ("/services/backend/a\u{0}", "id"), ("/services/backend/é", "id"), ("/services/bäckend/a", "service"),
      ("/services/backend/..", "id"), ("/services/./a", "service"), ("/services/backend/a:b", "id"),
      ("/services/backend/a#b", "id"), ("/services/backend/" + String(repeating: "x", count: 129), "id"),
      ("/services/" + String(repeating: "x", count: 64) + "/a", "service"),
    ] as [(String, String?)]
  )
  func refusesKeys(key: String, field: String?) {
    let error = #expect(throws: RegistrationError.self) { try RegistrationKey(parsing: key) }
    #expect(error?.code == .invalidKey && error?.key == key && error?.field == field)
    #expect(error.map { !$0.description.contains("\n") && !$0.description.contains("\r") } == true)
  }

  @Test(
    "names allow letters, digits, -, _ and . only, and a length limit",
    arguments: [
      "", "a b", "a\nb", "a\tb", "a/b", "a:b", "a@b", "a#b", "a\"b", "a'b", "é", "ｂ", ".", "..",
      String(repeating: "x", count: 64),
    ]
  )
  func refusesServiceNames(name: String) {
    let error = #expect(throws: RegistrationError.self) { try ServiceName(validating: name) }
    #expect(error?.code == .invalidName && error?.field == "service")
  }

  @Test("instance ids: up to 128 characters")
  func instanceIDs() throws {
    #expect(try InstanceID(validating: String(repeating: "x", count: 128)).rawValue.count == 128)
    let error = #expect(throws: RegistrationError.self) {
      try InstanceID(validating: String(repeating: "x", count: 129))
    }
    #expect(error?.field == "id" && error?.reason == "is longer than 128 characters")
    #expect(try ServiceName(validating: String(repeating: "x", count: 63)).rawValue.count == 63)
  }

  @Test(
    "HAProxy names: svc_<service> and the instance id, within HAProxy's name characters",
    arguments: ["backend", "a", "A-b_c.d", "...", String(repeating: "z", count: 63)]
  )
  func haproxyNames(name: String) throws {
    // HAProxy accepts letters, digits, "-", "_", "." and ":" in proxy and server names.
    func isHAProxyName(_ text: String) -> Bool {
      !text.isEmpty
        && text.unicodeScalars.allSatisfy {
          ("a"..."z").contains($0)
            || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0)
        }
    }
    let service = try ServiceName(validating: name)
    #expect(service.haproxyBackendName == "svc_\(name)" && isHAProxyName(service.haproxyBackendName))
    let instance = try InstanceID(validating: name)
    #expect(instance.haproxyServerName == name && isHAProxyName(instance.haproxyServerName))
    #expect(ServiceName.backend.haproxyBackendName == "svc_backend")
  }
}
