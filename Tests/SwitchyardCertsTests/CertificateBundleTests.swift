import Crypto
import Foundation
import SwitchyardCerts
import SwitchyardModel
import Testing
import X509

@Suite struct CertificateBundleTests {
  let name: CertificateName
  let ca: TestIssuer.Issued

  init() throws {
    name = try CertificateName(validating: "shop")
    ca = try TestIssuer.authority()
  }

  func hosts(_ texts: String...) throws -> [HostPattern] { try texts.map { try HostPattern(validating: $0) } }

  func validate(_ chain: String, _ key: String, hosts: [HostPattern]? = nil, now: Date = Date())
    throws(CertificateProblem)
    -> CertificateBundle
  {
    try CertificateBundle.validate(name: name, chainPEM: chain, keyPEM: key, hosts: hosts, now: now)
  }

  @Test func aLeafAloneWithItsSANs() throws {
    let leaf = try TestIssuer.leaf(
      commonName: "shop.example.com", dnsNames: ["shop.example.com", "WWW.example.com"], issuer: ca)
    let bundle = try validate(leaf.pem, leaf.key.pem)
    #expect(bundle.hosts.map(\.text) == ["shop.example.com", "www.example.com"])
    #expect(bundle.subject == "CN=shop.example.com")
    #expect(bundle.issuer == "CN=Test Root CA")
    #expect(bundle.notAfter == leaf.certificate.notValidAfter)
    let der = try leaf.certificate.serializeAsPEM().derBytes
    #expect(bundle.sha256Fingerprint == SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined())
    #expect(bundle.sha1Fingerprint == Insecure.SHA1.hash(data: der).map { String(format: "%02X", $0) }.joined())
    #expect(bundle.serialHex == leaf.certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined())
    #expect(!bundle.description.contains("PRIVATE"))
  }

  @Test func haproxyPEMHasNoBlankLineAndEndsInANewline() throws {
    let intermediate = try TestIssuer.intermediate(name: "Test Intermediate", issuer: ca)
    let leaf = try TestIssuer.leaf(commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: intermediate)
    // CRLF, blank lines between blocks and text around them, as files from other tools have.
    let chain =
      "subject=CN=shop\r\n\r\n" + leaf.pem.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n\r\n\n"
      + intermediate.pem + "\n\n"
    let bundle = try validate(chain, "\n\n" + leaf.key.pem + "\n\n")
    let pem = bundle.haproxyPEM
    #expect(pem.hasSuffix("-----END PRIVATE KEY-----\n"))
    #expect(!pem.contains("\n\n") && !pem.contains("\r"))
    #expect(pem.components(separatedBy: "-----BEGIN CERTIFICATE-----").count == 3)
    #expect(bundle.chainBlocks.count == 2)
    #expect(!bundle.chainPEM.contains("PRIVATE"))
  }

  @Test func hostsMustBeCoveredByTheLeaf() throws {
    let leaf = try TestIssuer.leaf(
      commonName: "x", dnsNames: ["shop.example.com", "*.apps.example.com"], issuer: ca)
    let bundle = try validate(
      leaf.pem, leaf.key.pem, hosts: try hosts("a.apps.example.com", "shop.example.com", "*.apps.example.com"))
    #expect(bundle.hosts.map(\.text) == ["a.apps.example.com", "shop.example.com", "*.apps.example.com"])
    for host in ["a.b.apps.example.com", "apps.example.com", "other.example.com", "*.example.com"] {
      let problem = #expect(throws: CertificateProblem.self) {
        try validate(leaf.pem, leaf.key.pem, hosts: try hosts(host))
      }
      #expect(problem?.field == "hosts")
      #expect(
        problem?.description
          == "certificate \"shop\": the host \(host) is not covered by the leaf certificate's DNS names (shop.example.com, *.apps.example.com)"
      )
    }
    #expect(throws: CertificateProblem.self) { try validate(leaf.pem, leaf.key.pem, hosts: []) }
  }

  @Test func aLeafWithoutDNSNamesNeedsHostsAndStillCannotCoverThem() throws {
    let leaf = try TestIssuer.leaf(commonName: "shop.example.com", dnsNames: [], issuer: ca)
    let problem = #expect(throws: CertificateProblem.self) { try validate(leaf.pem, leaf.key.pem) }
    #expect(problem?.reason.contains("no DNS subject alternative name") == true)
    #expect(throws: CertificateProblem.self) {
      try validate(leaf.pem, leaf.key.pem, hosts: try hosts("shop.example.com"))
    }
  }

  @Test func aKeyThatDoesNotMatch() throws {
    let leaf = try TestIssuer.leaf(commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: ca)
    let other = try TestIssuer.key(.p256)
    let problem = #expect(throws: CertificateProblem.self) { try validate(leaf.pem, other.pem) }
    #expect(
      problem?.description == "certificate \"shop\": the key does not match the leaf certificate (CN=shop.example.com)")
    #expect(problem?.description.contains(other.pem) == false)
  }

  @Test func expiredAndNotYetValid() throws {
    let now = Date()
    let expired = try TestIssuer.leaf(
      commonName: "old", dnsNames: ["old.example.com"], issuer: ca, notBefore: now.addingTimeInterval(-86_400 * 30),
      notAfter: now.addingTimeInterval(-60))
    let problem = #expect(throws: CertificateProblem.self) { try validate(expired.pem, expired.key.pem, now: now) }
    #expect(problem?.reason.contains("the leaf certificate (CN=old) expired at") == true)

    let future = try TestIssuer.leaf(
      commonName: "new", dnsNames: ["new.example.com"], issuer: ca, notBefore: now.addingTimeInterval(3600),
      notAfter: now.addingTimeInterval(86_400 * 30))
    let early = #expect(throws: CertificateProblem.self) { try validate(future.pem, future.key.pem, now: now) }
    #expect(early?.reason.contains("is not valid before") == true)
    // Within the allowed clock skew it is accepted.
    let soon = try TestIssuer.leaf(
      commonName: "soon", dnsNames: ["soon.example.com"], issuer: ca, notBefore: now.addingTimeInterval(120),
      notAfter: now.addingTimeInterval(86_400 * 30))
    #expect(try validate(soon.pem, soon.key.pem, now: now).hosts.count == 1)
  }

  @Test func chainsOutOfOrderOrWithABadSignatureAreRefused() throws {
    let intermediate = try TestIssuer.intermediate(name: "Test Intermediate", issuer: ca)
    let leaf = try TestIssuer.leaf(commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: intermediate)
    #expect(try validate(leaf.pem + "\n" + intermediate.pem + "\n" + ca.pem, leaf.key.pem).chainBlocks.count == 3)
    let reversed = #expect(throws: CertificateProblem.self) {
      try validate(intermediate.pem + "\n" + leaf.pem, leaf.key.pem)
    }
    #expect(reversed?.field == "chain")
    let skipped = #expect(throws: CertificateProblem.self) { try validate(leaf.pem + "\n" + ca.pem, leaf.key.pem) }
    #expect(skipped?.reason.contains("out of order") == true)
    // An impostor CA with the same name but another key: the names match, the signature does not.
    let impostor = try TestIssuer.intermediate(name: "Test Intermediate", issuer: ca)
    let forged = #expect(throws: CertificateProblem.self) { try validate(leaf.pem + "\n" + impostor.pem, leaf.key.pem) }
    #expect(forged?.reason.contains("signature does not verify") == true)
  }

  @Test(arguments: [
    ("", "holds no PEM certificate"),
    ("hello", "holds no PEM certificate"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n", "has no END line"),
    ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid base64"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid X.509 certificate"),
  ])
  func malformedChains(chain: String, expected: String) throws {
    let key = try TestIssuer.key(.p256)
    let problem = #expect(throws: CertificateProblem.self) { try validate(chain, key.pem) }
    #expect(problem?.field == "chain")
    #expect(problem?.reason.contains(expected) == true, "\(String(describing: problem))")
  }

  @Test func oversizeInputIsRefused() throws {
    let leaf = try TestIssuer.leaf(commonName: "s", dnsNames: ["s.example.com"], issuer: ca)
    let padded = leaf.pem + "\n" + String(repeating: "# comment\n", count: 5000)
    let problem = #expect(throws: CertificateProblem.self) { try validate(padded, leaf.key.pem) }
    #expect(problem?.reason == "the chain is larger than 48 KiB")
  }

  @Test func aKeyInTheChainFileIsRefused() throws {
    let leaf = try TestIssuer.leaf(commonName: "s", dnsNames: ["s.example.com"], issuer: ca)
    let problem = #expect(throws: CertificateProblem.self) {
      try validate(leaf.pem + "\n" + leaf.key.pem, leaf.key.pem)
    }
    #expect(problem?.reason.contains("PRIVATE KEY, not CERTIFICATE") == true)
    #expect(problem?.description.contains("MI") == false)
  }

  @Test func malformedAndEncryptedKeys() throws {
    let leaf = try TestIssuer.leaf(commonName: "s", dnsNames: ["s.example.com"], issuer: ca)
    let cases = [
      ("", "holds no PEM private key"),
      (leaf.key.pem + "\n" + leaf.key.pem, "holds 2 PEM blocks"),
      ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
      (
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        "encrypted"
      ),
      ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a valid private key"),
      (leaf.pem, "holds CERTIFICATE"),
    ]
    for (key, expected) in cases {
      let problem = #expect(throws: CertificateProblem.self) { try validate(leaf.pem, key) }
      #expect(problem?.field == "key")
      #expect(problem?.reason.contains(expected) == true, "\(String(describing: problem))")
    }
  }

  @Test(arguments: [false, true])
  func ecKeysP256AndP384InBothEncodings(legacy: Bool) throws {
    for type in [TestIssuer.KeyType.p256, .p384] {
      let leaf = try TestIssuer.leaf(
        commonName: "s", dnsNames: ["s.example.com"], issuer: ca, keyType: type, legacyPEM: legacy)
      let bundle = try validate(leaf.pem, leaf.key.pem)
      #expect(bundle.haproxyPEM.contains(legacy ? "-----BEGIN EC PRIVATE KEY-----" : "-----BEGIN PRIVATE KEY-----"))
    }
  }

  @Test func rsaKeysOf2048BitsInBothEncodingsAndRSAIssuers() throws {
    let rsaCA = try TestIssuer.authority(name: "RSA Root", keyType: .rsa(bits: 2048))
    for legacy in [false, true] {
      let leaf = try TestIssuer.leaf(
        commonName: "r", dnsNames: ["r.example.com"], issuer: rsaCA, keyType: .rsa(bits: 2048), legacyPEM: legacy)
      let bundle = try validate(leaf.pem + "\n" + rsaCA.pem, leaf.key.pem)
      #expect(bundle.haproxyPEM.contains(legacy ? "-----BEGIN RSA PRIVATE KEY-----" : "-----BEGIN PRIVATE KEY-----"))
    }
  }

  @Test func weakOrUnsupportedKeysAreRefused() throws {
    let small = try TestIssuer.leaf(commonName: "r", dnsNames: ["r.example.com"], issuer: ca, keyType: .rsa(bits: 1024))
    let problem = #expect(throws: CertificateProblem.self) { try validate(small.pem, small.key.pem) }
    #expect(problem?.reason.contains("RSA keys need at least 2048 bits") == true, "\(String(describing: problem))")
    let p521 = try TestIssuer.leaf(commonName: "e", dnsNames: ["e.example.com"], issuer: ca, keyType: .p521)
    let curve = #expect(throws: CertificateProblem.self) { try validate(p521.pem, p521.key.pem) }
    #expect(curve?.reason.contains("accepted are EC P-256, EC P-384 and RSA") == true)
  }

  @Test func openingARecordValidatesAgain() throws {
    let clusterKey = ClusterKey.generate()
    let leaf = try TestIssuer.leaf(commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: ca)
    let bundle = try validate(leaf.pem, leaf.key.pem)
    let record = bundle.record(sealedWith: clusterKey, source: .manual)
    let reread = try CertificateRecord.parse(
      key: Array(record.path.utf8), value: record.jsonValue(), modRevision: 7)
    #expect(reread.modRevision == 7)
    let opened = try CertificateBundle.open(reread, with: clusterKey, now: Date())
    #expect(opened.haproxyPEM == bundle.haproxyPEM)
    #expect(opened.sha256Fingerprint == bundle.sha256Fingerprint)
    // Past its end it no longer opens: a record is validated on every read.
    let later = #expect(throws: CertificateProblem.self) {
      try CertificateBundle.open(reread, with: clusterKey, now: leaf.certificate.notValidAfter.addingTimeInterval(1))
    }
    #expect(later?.reason.contains("expired") == true)
    #expect(throws: CertificateProblem.self) {
      try CertificateBundle.open(reread, with: ClusterKey.generate(), now: Date())
    }
  }
}
