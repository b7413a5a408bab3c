import Foundation
import Testing

@testable import SwitchyardModel

@Suite("Registration TLS fields")
struct RegistrationTLSTests {
  private func parse(_ json: String) throws(RegistrationError) -> Registration {
    try Registration.parse(Array(json.utf8))
  }

  @Test("tls and tls_server_name round-trip; the server name is lower-cased")
  func roundTrip() throws {
    let registration = try Registration(
      address: Address(validating: "127.0.0.1"), port: 9443, tls: true, tlsServerName: "API.Example.com")
    #expect(registration.tls)
    #expect(registration.tlsServerName == "api.example.com")
    let text = String(decoding: registration.encoded(), as: UTF8.self)
    #expect(
      text
        == #"{"address":"127.0.0.1","port":9443,"state":"up","tls":true,"tls_server_name":"api.example.com","weight":100}"#
    )
    let parsed = try Registration.parse(registration.encoded())
    #expect(parsed == registration)
    #expect(parsed.encoded() == registration.encoded())
    let bare = try parse(#"{"address":"127.0.0.1","port":9443,"tls":true}"#)
    #expect(bare.tls && bare.tlsServerName == nil)
    #expect(String(decoding: bare.encoded(), as: UTF8.self).contains(#""tls":true"#))
  }

  @Test("a registration without TLS encodes byte for byte as before; \"tls\": false is the same as none")
  func plainEncodingUnchanged() throws {
    let expected = #"{"address":"::1","check":{"path":"/h"},"port":80,"state":"drain","weight":7}"#
    let registration = try parse(expected)
    #expect(!registration.tls && registration.tlsServerName == nil)
    #expect(String(decoding: registration.encoded(), as: UTF8.self) == expected)
    let explicit = try parse(
      #"{"address":"::1","check":{"path":"/h"},"port":80,"state":"drain","weight":7,"tls":false}"#)
    #expect(explicit == registration)
    #expect(String(decoding: explicit.encoded(), as: UTF8.self) == expected)
    #expect(try parse("10.0.0.1:80").tls == false)
  }

  @Test(
    "bad TLS fields are refused naming the field",
    arguments: [
      (#"{"address":"127.0.0.1","port":1,"tls_server_name":"a.example"}"#, "tls_server_name", "not true"),
      (#"{"address":"127.0.0.1","port":1,"tls":false,"tls_server_name":"a.example"}"#, "tls_server_name", "not true"),
      (#"{"address":"127.0.0.1","port":1,"tls":"yes"}"#, "tls", "a string"),
      (#"{"address":"127.0.0.1","port":1,"tls":1}"#, "tls", "a number"),
      (#"{"address":"127.0.0.1","port":1,"tls":true,"tls_server_name":7}"#, "tls_server_name", "a number"),
      (
        #"{"address":"127.0.0.1","port":1,"tls":true,"tls_server_name":"*.example.com"}"#, "tls_server_name", "wildcard"
      ),
      (#"{"address":"127.0.0.1","port":1,"tls":true,"tls_server_name":"a b.example"}"#, "tls_server_name", "space"),
      (#"{"address":"127.0.0.1","port":1,"tls":true,"tls_server_name":"x) verify none"}"#, "tls_server_name", ""),
      (#"{"address":"127.0.0.1","port":1,"tls":true,"tls_server_name":"a.example\n"}"#, "tls_server_name", ""),
      (#"{"address":"127.0.0.1","port":1,"tls":true,"tls_server_name":""}"#, "tls_server_name", ""),
    ])
  func refused(json: String, field: String, reason: String) {
    #expect {
      _ = try parse(json)
    } throws: { error in
      guard let error = error as? RegistrationError else { return false }
      return error.code == .invalidField && error.field == field && (reason.isEmpty || error.reason.contains(reason))
        && !error.description.contains("\n")
    }
  }

  @Test("the writer's initializer applies the same rules")
  func writerRules() throws {
    let address = try Address(validating: "127.0.0.1")
    #expect(throws: RegistrationError.self) { try Registration(address: address, port: 1, tlsServerName: "a.example") }
    #expect(throws: RegistrationError.self) {
      try Registration(address: address, port: 1, tls: true, tlsServerName: "*.example.com")
    }
    // A state change keeps the TLS fields.
    let registration = try Registration(address: address, port: 1, tls: true, tlsServerName: "a.example")
    #expect(registration.with(state: .drain).tlsServerName == "a.example")
    #expect(try Registration.parse(registration.with(state: .drain).encoded()).tls)
  }
}
