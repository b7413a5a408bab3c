import Foundation
import SwitchyardCerts
import Testing

@Suite struct ClusterKeyTests {
  let name: CertificateName
  let secret = Array("-----BEGIN PRIVATE KEY-----\nnot really a key\n".utf8)

  init() throws { name = try CertificateName(validating: "shop") }

  @Test func sealingRoundTrips() throws {
    let key = ClusterKey.generate()
    let sealed = key.seal(secret, for: name)
    #expect(sealed.keyID == key.id)
    #expect(sealed.combined.count == 12 + secret.count + 16)
    #expect(try key.open(sealed, for: name) == secret)
    #expect(key.seal(secret, for: name).combined != sealed.combined, "each seal takes a fresh nonce")
  }

  @Test func theKeyFileRoundTripsAndTheIDIsStable() throws {
    let key = ClusterKey.generate()
    #expect(key.fileContents.hasSuffix("\n"))
    #expect(key.fileContents.count == 45)
    let read = try ClusterKey(fileContents: key.fileContents)
    #expect(read.id == key.id)
    #expect(key.id.count == 16)
    #expect(try read.open(key.seal(secret, for: name), for: name) == secret)
    #expect(ClusterKey.generate().id != key.id)
  }

  @Test func descriptionShowsTheIDNotTheKey() {
    let key = ClusterKey.generate()
    let base64 = key.fileContents.trimmingCharacters(in: .newlines)
    #expect(key.description == "cluster key \(key.id)")
    #expect(!String(describing: key).contains(base64))
    #expect(!String(reflecting: key).contains(base64) || String(reflecting: key).contains("bytes"))
  }

  @Test func anotherKeyDoesNotOpen() throws {
    let sealed = ClusterKey.generate().seal(secret, for: name)
    let other = ClusterKey.generate()
    let problem = #expect(throws: CertificateProblem.self) { try other.open(sealed, for: name) }
    #expect(problem?.description.contains("sealed with cluster key \(sealed.keyID)") == true)
    // The same bytes claimed by the other key's id still do not open: the tag fails.
    let relabelled = SealedSecret(keyID: other.id, combined: sealed.combined)
    #expect(throws: CertificateProblem.self) { try other.open(relabelled, for: name) }
  }

  @Test(arguments: [0, 12, 20, -1])
  func aChangedByteDoesNotOpen(position: Int) throws {
    let key = ClusterKey.generate()
    let sealed = key.seal(secret, for: name)
    var bytes = sealed.combined
    let index = position < 0 ? bytes.count - 1 : position
    bytes[index] ^= 0x01
    #expect(throws: CertificateProblem.self) {
      try key.open(SealedSecret(keyID: sealed.keyID, combined: bytes), for: name)
    }
    #expect(throws: CertificateProblem.self) {
      try key.open(SealedSecret(keyID: sealed.keyID, combined: Array(sealed.combined.dropLast())), for: name)
    }
  }

  @Test func aSealedKeyMovedToAnotherNameDoesNotOpen() throws {
    let key = ClusterKey.generate()
    let sealed = key.seal(secret, for: name)
    let problem = #expect(throws: CertificateProblem.self) {
      try key.open(sealed, for: try CertificateName(validating: "shop2"))
    }
    #expect(problem?.field == "sealed key")
    #expect(problem?.description.contains("another certificate name") == true)
  }

  @Test(arguments: [
    ("", "empty"), ("not base64!\n", "not base64"), ("AAAA\n", "holds 3 bytes"),
    (String(repeating: "A", count: 64) + "\n", "holds 48 bytes"),
  ])
  func badKeyFilesAreRefusedClearly(contents: String, expected: String) {
    let problem = #expect(throws: CertificateProblem.self) { try ClusterKey(fileContents: contents) }
    #expect(problem?.reason.contains(expected) == true, "\(String(describing: problem))")
  }
}
