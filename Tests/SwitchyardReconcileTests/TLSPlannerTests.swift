import SwitchyardReconcile
import Testing

@Suite("TLS planner: Runtime API steps for certificates")
struct TLSPlannerTests {
  let directory = "/state/tls/certs"

  func certificate(_ name: String, sha1: String, hosts: [String]) -> ServedCertificate {
    ServedCertificate(
      name: name, path: "\(directory)/\(name).pem", sha1Fingerprint: sha1, sniFilters: hosts,
      pem: "-----BEGIN CERTIFICATE-----\nSECRET\n-----END CERTIFICATE-----\n")
  }

  @Test("a new certificate is installed, then listed")
  func newCertificate() {
    let shop = certificate("shop", sha1: "aa", hosts: ["shop.example.com"])
    let steps = TLSPlanner.plan(
      desired: [shop], defaultCertificate: nil, observed: ObservedTLS(), managedDirectory: directory)
    #expect(steps == [.install(shop), .list(shop)])
  }

  @Test("nothing to do when HAProxy serves what is desired")
  func steadyState() {
    let shop = certificate("shop", sha1: "AA", hosts: ["shop.example.com"])
    let observed = ObservedTLS(loaded: [shop.path: "AA"], listed: [shop.path: ["shop.example.com"]])
    #expect(
      TLSPlanner.plan(desired: [shop], defaultCertificate: nil, observed: observed, managedDirectory: directory)
        .isEmpty)
  }

  @Test("a renewal is one install, its line stays")
  func renewal() {
    let shop = certificate("shop", sha1: "BB", hosts: ["shop.example.com"])
    let observed = ObservedTLS(loaded: [shop.path: "AA"], listed: [shop.path: ["shop.example.com"]])
    #expect(
      TLSPlanner.plan(desired: [shop], defaultCertificate: nil, observed: observed, managedDirectory: directory)
        == [.install(shop)])
  }

  @Test("changed hosts: the line comes out and goes in again")
  func hostsChanged() {
    let shop = certificate("shop", sha1: "AA", hosts: ["a.example.com", "b.example.com"])
    let observed = ObservedTLS(loaded: [shop.path: "AA"], listed: [shop.path: ["a.example.com"]])
    #expect(
      TLSPlanner.plan(desired: [shop], defaultCertificate: nil, observed: observed, managedDirectory: directory)
        == [.unlist(path: shop.path), .list(shop)])
  }

  @Test("a removed certificate is unlisted before it is deleted; files elsewhere and kept ones stay")
  func removal() {
    let gone = "\(directory)/gone.pem"
    let kept = "\(directory)/kept.pem"
    let observed = ObservedTLS(
      loaded: [gone: "AA", kept: "CC", "/etc/haproxy/other.pem": "DD"],
      listed: [gone: ["gone.example.com"], kept: ["kept.example.com"]])
    let steps = TLSPlanner.plan(
      desired: [], defaultCertificate: nil, observed: observed, managedDirectory: directory, keep: [kept])
    #expect(steps == [.unlist(path: gone), .delete(path: gone)])
  }

  @Test("the default certificate is installed when it differs, never listed or deleted")
  func defaultCertificate() {
    let fallback = ServedCertificate(
      name: "default", path: "/state/tls/default.pem", sha1Fingerprint: "EE", sniFilters: [], pem: "x")
    let observed = ObservedTLS(loaded: [fallback.path: "FF"])
    #expect(
      TLSPlanner.plan(desired: [], defaultCertificate: fallback, observed: observed, managedDirectory: directory)
        == [.install(fallback)])
    let served = ObservedTLS(loaded: [fallback.path: "EE"])
    #expect(
      TLSPlanner.plan(desired: [], defaultCertificate: fallback, observed: served, managedDirectory: directory)
        .isEmpty)
  }

  @Test("the crt-list file lists desired and kept lines by path; descriptions hold no key")
  func crtListText() {
    let b = certificate("b", sha1: "1", hosts: ["b.example.com", "*.b.example.com"])
    let a = certificate("a", sha1: "2", hosts: ["a.example.com"])
    let text = TLSPlanner.crtListText([b, a], kept: ["\(directory)/c.pem": ["c.example.com"]])
    #expect(
      text == """
        \(directory)/a.pem a.example.com
        \(directory)/b.pem *.b.example.com b.example.com
        \(directory)/c.pem c.example.com

        """)
    #expect(!"\(TLSStep.install(a))".contains("SECRET"))
    #expect(!a.description.contains("SECRET"))
  }
}
