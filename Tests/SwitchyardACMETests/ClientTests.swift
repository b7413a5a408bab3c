import Crypto
import Foundation
import SwitchyardACME
import SwitchyardTestSupport
import Testing

/// ``ACMEClient`` against Pebble.
@Suite(.timeLimit(.minutes(1))) struct ClientTests {
  @Test func accountsAreFoundAgainWithOnlyReturnExisting() async throws {
    try await PebbleLab.with(httpPort: try FreePort.allocate()) { pebble in
      let key = P256.Signing.PrivateKey()
      let created = try ACMEClient(
        directoryURL: pebble.directoryURL, trustRootsFile: pebble.caCertificate, accountKey: key, logger: quietLogger)
      let found = try ACMEClient(
        directoryURL: pebble.directoryURL, trustRootsFile: pebble.caCertificate, accountKey: key, logger: quietLogger)
      let stranger = try ACMEClient(
        directoryURL: pebble.directoryURL, trustRootsFile: pebble.caCertificate,
        accountKey: P256.Signing.PrivateKey(), logger: quietLogger)
      defer {
        Task {
          await created.shutdown()
          await found.shutdown()
          await stranger.shutdown()
        }
      }
      let url = try await created.newAccount()
      #expect(try await found.newAccount(onlyReturnExisting: true) == url)
      let error = await #expect(throws: ACMEError.self) { try await stranger.newAccount(onlyReturnExisting: true) }
      #expect(error?.problem?.name == "accountDoesNotExist")
    }
  }

  @Test func badNonceAnswersAreRetried() async throws {
    // Pebble rejects 15% of good nonces here; each request is tried up to six times. Over 41 requests, the
    // chance that none is rejected is about 0.1%, that one fails six times about 0.05%.
    let pebble = try await PebbleLab.start(
      httpPort: try FreePort.allocate(), environment: ["PEBBLE_WFE_NONCEREJECT": "15"])
    let client = try ACMEClient(
      directoryURL: pebble.directoryURL, trustRootsFile: pebble.caCertificate,
      accountKey: P256.Signing.PrivateKey(), logger: quietLogger)
    do {
      try await client.newAccount()
      for index in 0..<20 {
        let (url, order) = try await client.newOrder(hosts: ["n\(index).example.test"])
        #expect(order.status == "pending")
        #expect(try await client.order(url).order.authorizations.count == 1)
      }
      #expect(await client.badNonceRetries > 0)
    } catch {
      await client.shutdown()
      await pebble.shutdown()
      throw error
    }
    await client.shutdown()
    await pebble.shutdown()
  }

  @Test func anUntrustedCAIsRefused() async throws {
    try await PebbleLab.with(httpPort: try FreePort.allocate()) { pebble in
      let other = try TemporaryDirectory(prefix: "acme-other-ca")
      defer { other.remove() }
      let tls = try TLSFiles.generate(in: other.path)
      let client = try ACMEClient(
        directoryURL: pebble.directoryURL, trustRootsFile: tls.caCertificate,
        accountKey: P256.Signing.PrivateKey(), logger: quietLogger)
      let error = await #expect(throws: ACMEError.self) { try await client.directory() }
      #expect(error?.code == .transport)
      await client.shutdown()
    }
  }
}
