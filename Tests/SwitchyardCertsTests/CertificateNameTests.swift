import SwitchyardCerts
import Testing

@Suite struct CertificateNameTests {
  @Test(arguments: ["shop", "shop.example.com", "a_b-c.1", String(repeating: "x", count: 128)])
  func acceptsSafeNames(text: String) throws {
    #expect(try CertificateName(validating: text).rawValue == text)
  }

  @Test(arguments: ["", ".", "..", "a/b", "a b", "shöp", "a\nb", String(repeating: "x", count: 129), "*.example.com"])
  func refusesOthers(text: String) {
    let problem = #expect(throws: CertificateProblem.self) { try CertificateName(validating: text) }
    #expect(problem?.field == "name")
    #expect(problem?.description.contains("\n") == false)
  }
}
