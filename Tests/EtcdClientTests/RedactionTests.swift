import EtcdClient
import SwitchyardTestSupport
import Testing

@Suite("Passwords stay out of descriptions and errors")
struct RedactionTests {
  static let password = "Pw-7f3a91c2-never-print"

  @Test("credentials and a configuration that holds them print without the password")
  func descriptions() throws {
    var configuration = try EtcdConfiguration(endpoints: "127.0.0.1:2379")
    configuration.credentials = .init(username: "app", password: Self.password)
    let credentials = try #require(configuration.credentials)
    var dumped = ""
    dump(configuration, to: &dumped)
    var dumpedCredentials = ""
    dump(credentials, to: &dumpedCredentials)
    let texts = [
      String(describing: configuration), String(reflecting: configuration), "\(configuration)",
      String(describing: credentials), String(reflecting: credentials), "\(credentials)",
      String(describing: configuration.credentials), dumped, dumpedCredentials,
    ]
    for text in texts {
      #expect(!text.contains(Self.password), "printed the password: \(text)")
      #expect(text.contains("app"), "lost the user name: \(text)")
      #expect(text.contains("<redacted>"), "does not say the password is hidden: \(text)")
    }
    // Redacting the description must not change the value itself.
    #expect(credentials.password == Self.password)
  }

  @Test("a rejected password is not in the error")
  func authenticationFailure() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await cluster.enableAuth(rootPassword: "right-\(Self.password)")
      try await withTestClient(endpoints: cluster.endpoints) {
        $0.credentials = .init(username: "root", password: Self.password)
      } _: { etcd in
        do {
          _ = try await etcd.get(.key("/k"))
          Issue.record("a wrong password was accepted")
        } catch let error as EtcdError {
          #expect(error.code == .authenticationFailed)
          for text in [String(describing: error), String(reflecting: error), error.message] {
            #expect(!text.contains(Self.password), "the error shows the password: \(text)")
          }
        }
      }
    }
  }
}
