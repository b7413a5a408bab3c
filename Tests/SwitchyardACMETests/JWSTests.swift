import Crypto
import Foundation
import SwitchyardACME
import Testing

@Suite struct JWSTests {
  /// RFC 7638, section 3.1: the example RSA key and its SHA-256 thumbprint.
  @Test func rfc7638ExampleThumbprint() {
    let n =
      "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    let jwk = JWK.rsa(n: n, e: "AQAB")
    #expect(jwk.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
  }

  @Test func p256ThumbprintIsOverTheCanonicalMembers() throws {
    let key = P256.Signing.PrivateKey()
    guard case .p256(let x, let y) = JWK(key.publicKey) else {
      Issue.record("not an EC JWK")
      return
    }
    #expect(Base64URL.decode(x)?.count == 32 && Base64URL.decode(y)?.count == 32)
    let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
    let expected = Base64URL.encode(SHA256.hash(data: Array(canonical.utf8)))
    #expect(JWK(key.publicKey).thumbprint == expected)
    #expect(keyAuthorization(token: "abc_-1", accountKey: key.publicKey) == "abc_-1.\(expected)")
  }

  @Test func base64URLHasNoPaddingAndRoundTrips() {
    for length in 0..<40 {
      let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 251) }
      let text = Base64URL.encode(bytes)
      #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
      #expect(Base64URL.decode(text) == bytes)
    }
    #expect(Base64URL.decode("a+b") == nil)
  }

  @Test func signedJWSVerifiesAndNamesItsSigner() throws {
    let key = P256.Signing.PrivateKey()
    let jws = try JWS.sign(
      payload: Array(#"{"termsOfServiceAgreed":true}"#.utf8), url: "https://ca.test/new-acct", nonce: "n0nce",
      signer: .jwk, key: key)
    #expect(jws.isValid(for: key.publicKey))
    #expect(!jws.isValid(for: P256.Signing.PrivateKey().publicKey))
    let header = try #require(Base64URL.decode(jws.protected))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
    #expect(object["alg"] as? String == "ES256")
    #expect(object["nonce"] as? String == "n0nce")
    #expect(object["url"] as? String == "https://ca.test/new-acct")
    #expect(object["kid"] == nil)
    #expect((object["jwk"] as? [String: String])?["crv"] == "P-256")

    let asGet = try JWS.sign(
      payload: nil, url: "https://ca.test/order/1", nonce: "n1", signer: .kid("https://ca.test/acct/7"), key: key)
    #expect(asGet.payload == "")
    #expect(asGet.isValid(for: key.publicKey))
    let kidHeader = try #require(Base64URL.decode(asGet.protected))
    let kidObject = try #require(try JSONSerialization.jsonObject(with: Data(kidHeader)) as? [String: Any])
    #expect(kidObject["kid"] as? String == "https://ca.test/acct/7")
    #expect(kidObject["jwk"] == nil)

    var tampered = jws
    tampered.payload = Base64URL.encode(Array(#"{"termsOfServiceAgreed":false}"#.utf8))
    #expect(!tampered.isValid(for: key.publicKey))
  }

  @Test func problemDocumentsAreNamedAndBounded() throws {
    let json = #"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce\u0007"}"#
    let problem = try JSONDecoder().decode(ACMEProblem.self, from: Data(json.utf8))
    #expect(problem.isBadNonce)
    #expect(problem.name == "badNonce")
    #expect(problem.description == "badNonce: JWS has an invalid anti-replay nonce?")
    let long = ACMEProblem(type: "about:blank", detail: String(repeating: "x", count: 1000))
    #expect(long.description.count <= 301)
  }
}

@Suite struct ACMEChallengeTests {
  static let thumbprint = JWK(P256.Signing.PrivateKey().publicKey).thumbprint

  @Test func parsesAWellFormedEntry() throws {
    let value = "tok-EN_1.\(Self.thumbprint)"
    let challenge = try ACMEChallenge.parse(
      key: Array("/switchyard/acme/challenges/tok-EN_1".utf8), value: Array(value.utf8))
    #expect(challenge.token == "tok-EN_1")
    #expect(challenge.keyAuthorization == value)
    #expect(challenge.key == "/switchyard/acme/challenges/tok-EN_1")
  }

  @Test(arguments: [
    ("/switchyard/acme/challenges/../../etc", "x"),
    ("/switchyard/acme/challenges/a b", "a b.T"),
    ("/switchyard/acme/challenges/", "."),
    ("/switchyard/acme/challenges/tok\nset map", "tok"),
    ("/switchyard/acme/challenges/" + String(repeating: "a", count: 129), "a"),
    ("/switchyard/other/tok", "tok"),
  ])
  func refusesHostileKeys(key: String, tokenInValue: String) {
    let value = "\(tokenInValue).\(Self.thumbprint)"
    #expect(throws: ACMEError.self) { try ACMEChallenge.parse(key: Array(key.utf8), value: Array(value.utf8)) }
  }

  @Test(arguments: [
    "other.THUMB", "tok", "tok.", "tok.short", "tok.\(String(repeating: "A", count: 42))!", "tok.a.b",
    "tok.\(String(repeating: "A", count: 43))\nadd map x",
  ])
  func refusesBadKeyAuthorizations(value: String) {
    #expect(throws: ACMEError.self) {
      try ACMEChallenge.parse(key: Array("/switchyard/acme/challenges/tok".utf8), value: Array(value.utf8))
    }
  }
}

@Suite struct ACMEPlanTests {
  let start = Date(timeIntervalSince1970: 1_800_000_000)
  var end: Date { start.addingTimeInterval(90 * 86_400) }

  @Test func keepsUntilTheLastThirdThenRenews() {
    let certificate = (hosts: ["a.example.test"], notBefore: start, notAfter: end)
    let renewAt = start.addingTimeInterval(60 * 86_400)
    #expect(
      ACMEPlan.step(
        hosts: ["a.example.test"], certificate: certificate, order: nil, now: start.addingTimeInterval(10),
        renewalFraction: 1.0 / 3) == .keep(renewAt: renewAt))
    #expect(
      ACMEPlan.step(
        hosts: ["a.example.test"], certificate: certificate, order: nil, now: renewAt.addingTimeInterval(1),
        renewalFraction: 1.0 / 3) == .order(.renewal))
    #expect(
      ACMEPlan.step(
        hosts: ["a.example.test", "b.example.test"], certificate: certificate, order: nil, now: start,
        renewalFraction: 1.0 / 3) == .order(.hostsChanged))
    #expect(
      ACMEPlan.step(hosts: ["a.example.test"], certificate: nil, order: nil, now: start, renewalFraction: 1.0 / 3)
        == .order(.missing))
  }

  @Test func honoursTheBackoffOfAnOrderForTheSameHosts() {
    var order = ACMEOrderRecord(hosts: ["a.example.test"])
    order.attempts = 2
    order.nextAttemptAt = Int64(start.timeIntervalSince1970) + 100
    let until = Date(timeIntervalSince1970: TimeInterval(order.nextAttemptAt!))
    #expect(
      ACMEPlan.step(hosts: ["a.example.test"], certificate: nil, order: order, now: start, renewalFraction: 0.3)
        == .wait(until: until))
    #expect(
      ACMEPlan.step(
        hosts: ["a.example.test"], certificate: nil, order: order, now: until.addingTimeInterval(1),
        renewalFraction: 0.3) == .order(.missing))
    #expect(
      ACMEPlan.step(hosts: ["b.example.test"], certificate: nil, order: order, now: start, renewalFraction: 0.3)
        == .order(.missing))
  }

  @Test func backoffDoublesUpToTheMaximum() {
    let waits = (1...8).map { ACMEPlan.backoff(attempts: $0, minimum: .seconds(1), maximum: .seconds(20)) }
    #expect(
      waits == [
        .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(20), .seconds(20), .seconds(20),
      ])
    #expect(ACMEPlan.backoff(attempts: 10_000, minimum: .seconds(60), maximum: .seconds(3600)) == .seconds(3600))
  }

  @Test func orderURLsAreFollowedOnlyToTheCA() {
    let directory = "https://127.0.0.1:14000/dir"
    #expect(ACMEPlan.isSameOrigin("https://127.0.0.1:14000/my-order/abc", as: directory))
    #expect(!ACMEPlan.isSameOrigin("https://127.0.0.1:2379/v3/kv/put", as: directory))
    #expect(!ACMEPlan.isSameOrigin("http://127.0.0.1:14000/my-order/abc", as: directory))
    #expect(!ACMEPlan.isSameOrigin("https://evil.test:14000/x", as: directory))
  }

  @Test func orderRecordsAreBounded() throws {
    var record = ACMEOrderRecord(hosts: ["a.example.test"])
    record.attempts = 3
    #expect(try ACMEOrderRecord.parse(record.encoded()) == record)
    #expect(throws: ACMEError.self) { try ACMEOrderRecord.parse(Array(#"{"hosts":[],"attempts":-1}"#.utf8)) }
    #expect(throws: ACMEError.self) { try ACMEOrderRecord.parse(Array("not json".utf8)) }
  }
}
