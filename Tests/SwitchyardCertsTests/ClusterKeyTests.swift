import Foundation
import SwitchyardCerts
import Testing

@Suite struct ClusterKeyTests {
  @Test func sealingRoundTrips() throws {
    let key = ClusterKey.generate()
    let name = try CertificateName(validating: "shop")
    let secret = Array("-----BEGIN PRIVATE KEY-----".utf8)
    let sealed = key.seal(secret, for: name)
    #expect(sealed.keyID == key.id)
    #expect(try key.open(sealed, for: name) == secret)
  }
}
