import ArgumentParser
import Crypto
import EtcdClient
import Foundation
import Logging
import SwitchyardCerts
import SwitchyardTestSupport
import Testing
import X509

@testable import SwitchyardCLI

/// `switchyard cert …` against a real etcd: keygen, add, replace, ls, rm, and each way a certificate is
/// refused before anything is written.
@Suite("cert commands") struct CertCommandTests {
  /// A directory of test files, removed by ``remove()``.
  struct Files {
    let path: String

    init() throws {
      path = NSTemporaryDirectory() + "switchyard-cert-test-" + UUID().uuidString
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    /// Writes `text` to `name` (mode 0600) and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
      let file = "\(path)/\(name)"
      try text.write(toFile: file, atomically: false, encoding: .utf8)
      try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
      return file
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
  }

  /// A CA key and name, and leaves it issues (P-256), valid from `notBefore` to `notAfter`.
  struct Issuer {
    let key = P256.Signing.PrivateKey()
    let name: DistinguishedName

    init() throws { name = try DistinguishedName { CommonName("CLI Test CA") } }

    func leaf(
      _ dnsNames: [String], notBefore: Date = Date().addingTimeInterval(-3600),
      notAfter: Date = Date().addingTimeInterval(60 * 86_400)
    ) throws -> (certificate: String, key: String) {
      let leafKey = P256.Signing.PrivateKey()
      let certificate = try Certificate(
        version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey), notValidBefore: notBefore,
        notValidAfter: notAfter, issuer: name, subject: try DistinguishedName { CommonName(dnsNames.first ?? "x") },
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          SubjectAlternativeNames(dnsNames.map { .dnsName($0) })
        },
        issuerPrivateKey: .init(key))
      return (try certificate.serializeAsPEM().pemString + "\n", leafKey.pemRepresentation + "\n")
    }
  }

  func withEtcd(_ body: (_ endpoint: String, _ client: EtcdClient, _ files: Files) async throws -> Void)
    async throws
  {
    let files = try Files()
    defer { files.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
      configuration.requestTimeout = .seconds(5)
      configuration.dialTimeout = .seconds(1)
      var logger = Logger(label: "cert-command-tests")
      logger.logLevel = .critical
      try await withEtcdClient(configuration: configuration, logger: logger) { client in
        try await body(cluster.endpoints[0], client, files)
      }
    }
  }

  func add(_ arguments: [String], _ client: EtcdClient) async throws -> [String] {
    try await CertAddCommand.parse(arguments).execute(client: client).lines
  }

  // MARK: - keygen

  @Test func keygenWritesA0600FileOnceAndPrintsItsID() throws {
    let files = try Files()
    defer { files.remove() }
    let path = "\(files.path)/cluster.key"
    try CertKeygenCommand.writeNewFile(path, contents: ClusterKey.generate().fileContents)
    let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
    #expect(mode == 0o600)
    let key = try ClusterKey(fileContents: try String(contentsOfFile: path, encoding: .utf8))
    #expect(key.id.count == 16)
    let error = #expect(throws: OperatorError.self) {
      try CertKeygenCommand.writeNewFile(path, contents: ClusterKey.generate().fileContents)
    }
    #expect(error?.description.contains("never overwritten") == true)
    #expect(try ClusterKey(fileContents: try String(contentsOfFile: path, encoding: .utf8)).id == key.id)
  }

  // MARK: - add, replace, ls, rm

  @Test("add, replace, ls, ls --json, rm, an invalid entry", .timeLimit(.minutes(1)))
  func addReplaceListRemove() async throws {
    try await withEtcd { endpoint, client, files in
      let clusterKey = ClusterKey.generate()
      let keyFile = try files.write("cluster.key", clusterKey.fileContents)
      let issuer = try Issuer()
      let first = try issuer.leaf(["shop.example.com", "*.shop.example.com"])
      let common = ["--cluster-key", keyFile, "--etcd-endpoints", endpoint]
      let added = try await add(
        ["shop", "--cert", try files.write("c1.pem", first.certificate), "--key", try files.write("k1.pem", first.key)]
          + common, client)
      #expect(added[0].hasPrefix("certificate shop added at etcd revision"), "\(added)")
      #expect(added.contains("  hosts shop.example.com,*.shop.example.com"), "\(added)")
      #expect(added.contains("  key sealed with cluster key \(clusterKey.id)"), "\(added)")
      #expect(!added.joined().contains("PRIVATE"))

      // What etcd holds: no key bytes, and it opens with the cluster key into the same key.
      let stored = try #require(try await client.value(of: "/switchyard/certs/shop"))
      let keyBody = first.key.split(separator: "\n").dropFirst().dropLast().joined()
      #expect(!String(decoding: stored.value, as: UTF8.self).contains(String(keyBody.prefix(40))))
      let record = try CertificateRecord.parse(key: stored.key, value: stored.value, modRevision: stored.modRevision)
      let opened = try CertificateBundle.open(record, with: clusterKey, now: Date())
      #expect(opened.haproxyPEM.hasSuffix(first.key))
      #expect(throws: CertificateProblem.self) { try CertificateBundle.open(record, with: .generate(), now: Date()) }

      // Renewal: the same name again, one host only, is a replace.
      let renewed = try issuer.leaf(["shop.example.com"], notAfter: Date().addingTimeInterval(10 * 86_400))
      let replaced = try await add(
        [
          "shop", "--cert", try files.write("c2.pem", renewed.certificate), "--key",
          try files.write("k2.pem", renewed.key),
          "--host", "SHOP.example.com",
        ] + common, client)
      #expect(replaced[0].hasPrefix("certificate shop replaced at etcd revision"), "\(replaced)")

      try await client.put("/switchyard/certs/bad\u{1b}[2J", value: Array(#"{"chain_pem":"x"}"#.utf8))
      let listed = try await CertListCommand.parse([]).execute(client: client)
      let text = listed.joined(separator: "\n")
      #expect(listed.contains { $0.hasPrefix("shop ") && $0.contains("shop.example.com") && $0.contains(" manual ") })
      #expect(listed.contains { $0.contains(clusterKey.id) })
      #expect(text.contains("/switchyard/certs/bad\\u{1B}[2J: INVALID: "), "\(text)")
      #expect(!text.contains("\u{1b}") && !text.contains("PRIVATE"))
      let days = try #require(listed.first { $0.hasPrefix("shop ") }?.split(separator: " ").filter { !$0.isEmpty })
      #expect(days.contains("9") || days.contains("10"), "\(days)")

      let json = try await CertListCommand.parse(["--json"]).execute(client: client).joined()
      let document = try JSONDecoder().decode(CertificateListing.Document.self, from: Data(json.utf8))
      #expect(document.certificates.map(\.name) == ["shop"])
      #expect(document.certificates.first?.keyID == clusterKey.id)
      #expect(document.certificates.first?.hosts == ["shop.example.com"])
      #expect(document.invalid.count == 1)

      // status: the section warns of a certificate that expires within 14 days.
      let status = try await CertificateListing.read(from: client).statusLines(now: Date())
      #expect(status.contains { $0.contains("warning: certificate shop expires within 14 days") }, "\(status)")
      #expect(status.contains { $0.contains("INVALID") })

      let removed = try await CertRemoveCommand.parse(["shop"]).execute(client: client)
      #expect(removed[0].hasPrefix("certificate shop removed at etcd revision"), "\(removed)")
      #expect(removed[0].contains("it was for shop.example.com"), "\(removed)")
      let again = try await CertRemoveCommand.parse(["shop"]).execute(client: client)
      #expect(again[0].hasPrefix("certificate shop: there was none"), "\(again)")
      #expect(try await client.value(of: "/switchyard/certs/shop") == nil)
    }
  }

  // MARK: - Refusals

  @Test("each refusal names the problem and writes nothing", .timeLimit(.minutes(1)))
  func refusals() async throws {
    try await withEtcd { endpoint, client, files in
      let keyFile = try files.write("cluster.key", ClusterKey.generate().fileContents)
      let issuer = try Issuer()
      let good = try issuer.leaf(["shop.example.com"])
      let cert = try files.write("good.pem", good.certificate)
      let key = try files.write("good-key.pem", good.key)
      let other = try issuer.leaf(["shop.example.com"])
      let expired = try issuer.leaf(
        ["shop.example.com"], notBefore: Date().addingTimeInterval(-90 * 86_400),
        notAfter: Date().addingTimeInterval(-60))
      let early = try issuer.leaf(
        ["shop.example.com"], notBefore: Date().addingTimeInterval(86_400),
        notAfter: Date().addingTimeInterval(90 * 86_400))
      let cases: [(String, [String], String)] = [
        (
          "malformed chain",
          ["shop", "--cert", try files.write("bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"), "--key", key],
          "has no END line"
        ),
        (
          "key not matching", ["shop", "--cert", cert, "--key", try files.write("other-key.pem", other.key)],
          "the key does not match the leaf certificate (CN=shop.example.com)"
        ),
        (
          "expired",
          [
            "shop", "--cert", try files.write("old.pem", expired.certificate), "--key",
            try files.write("old-key.pem", expired.key),
          ],
          "the leaf certificate (CN=shop.example.com) expired at"
        ),
        (
          "not yet valid",
          [
            "shop", "--cert", try files.write("new.pem", early.certificate), "--key",
            try files.write("new-key.pem", early.key),
          ],
          "is not valid before"
        ),
        (
          "host not a DNS name", ["shop", "--cert", cert, "--key", key, "--host", "shop.example.com:443"],
          "--host \"shop.example.com:443\": contains \":\""
        ),
        (
          "host not covered", ["shop", "--cert", cert, "--key", key, "--host", "www.example.com"],
          "the host www.example.com is not covered by the leaf certificate's DNS names (shop.example.com)"
        ),
        (
          "wrong cluster key file", ["shop", "--cert", cert, "--key", key, "--cluster-key", cert],
          "is not base64 on one line"
        ),
        ("bad NAME", ["../shop", "--cert", cert, "--key", key], "NAME: the name contains \"/\""),
      ]
      for (what, arguments, expected) in cases {
        let command = try CertAddCommand.parse(
          arguments + ["--etcd-endpoints", endpoint]
            + (arguments.contains("--cluster-key") ? [] : ["--cluster-key", keyFile]))
        do {
          _ = try await command.execute(client: client)
          Issue.record("\(what): accepted")
        } catch {
          let message = (error as? ValidationError)?.message ?? "\(error)"
          #expect(message.contains(expected), "\(what): \(message)")
          #expect(
            !message.contains("PRIVATE") && !message.contains(String(good.key.dropFirst(28).prefix(30))), "\(what)")
        }
      }
      let missingKey = try CertAddCommand.parse(["shop", "--cert", cert, "--key", key, "--etcd-endpoints", endpoint])
      #expect(throws: ValidationError.self) { try missingKey.prepare(environment: [:]) }
      #expect(try missingKey.prepare(environment: [CertAddCommand.clusterKeyVariable: keyFile]).bundle.hosts.count == 1)
      let all = try await client.getPaginated(.prefix(CertificateRecord.root))
      #expect(all.kvs.isEmpty, "a refused certificate wrote \(all.kvs.count) entries")
    }
  }

  @Test func aKeyFileReadableByOthersIsAWarning() throws {
    let files = try Files()
    defer { files.remove() }
    let good = try Issuer().leaf(["shop.example.com"])
    let keyFile = try files.write("cluster.key", ClusterKey.generate().fileContents)
    let key = try files.write("key.pem", good.key)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: key)
    let command = try CertAddCommand.parse([
      "shop", "--cert", try files.write("c.pem", good.certificate), "--key", key, "--cluster-key", keyFile,
    ])
    let warnings = try command.prepare().warnings
    #expect(warnings == ["warning: the key file \(key) is readable by group or others; chmod 600 it"])
  }

  @Test func addTakesTheEtcdClientCertificateAsEtcdCert() throws {
    let command = try CertAddCommand.parse([
      "shop", "--cert", "c.pem", "--key", "k.pem", "--etcd-endpoints", "127.0.0.1:1", "--request-timeout", "3",
    ])
    let options = try command.etcd.etcdOptions()
    let configuration = try options.makeConfiguration(environment: [:])
    #expect(configuration.endpoints.map(\.description) == ["127.0.0.1:1"])
    #expect(configuration.tls == nil)
    #expect(throws: (any Error).self) {
      try CertAddCommand.parse(["shop", "--cert", "c.pem", "--key", "k.pem", "--etcd-cert", "/nonexistent"]).etcd
        .etcdOptions()
    }
  }
}
