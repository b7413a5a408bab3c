import SwitchyardModel

/// The HTTPS edge of the HTTP frontend: the TLS listener, ACME HTTP-01 answers, and the per-route redirect to
/// HTTPS and HSTS.
extension ConfigRenderer {
  /// The HTTPS bind of `frontend http`: the default certificate first (served when no crt-list entry
  /// matches the SNI name, or there is none), then the crt-list the controller keeps through the Runtime
  /// API. Nothing without ``NodeSettings/httpsListen``.
  static func httpsBindLines(settings: NodeSettings) -> [String] {
    guard let https = settings.httpsListen else { return [] }
    return [
      "  bind \(https) ssl crt \(settings.defaultCertificatePath) crt-list \(settings.crtListPath) alpn h2,http/1.1"
    ]
  }

  /// What `frontend http` does before any routing: ACME HTTP-01 challenges answered from the map at
  /// ``NodeSettings/acmeMapPath`` (token → key authorization, see ``ACMEChallengeMap``; always present,
  /// so a challenge never needs a reload), and with HTTPS the `X-Forwarded-Proto` a service sees (a
  /// client's own header is replaced).
  static func edgeRules(settings: NodeSettings) -> [String] {
    var lines = [
      "http-request set-var(txn.sy_acme) path,field(4,/),map(\(settings.acmeMapPath))"
        + " if { path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]{1,\(ACMEChallengeMap.maxTokenLength)}$ }",
      "http-request return status 200 content-type text/plain lf-string \"%[var(txn.sy_acme)]\""
        + " if { var(txn.sy_acme) -m found }",
    ]
    if settings.httpsListen != nil {
      lines += [
        "http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
      ]
    }
    return lines.map { "  " + $0 }
  }

  /// A route's TLS options, read from its map value (``RouteTable/Entry/value``): plain HTTP redirected to
  /// HTTPS (308, same host and path with query, to the HTTPS port) with flag `r`; the HSTS header on HTTPS
  /// answers only (RFC 6797 forbids it over plain HTTP) when a max-age is set, with `includeSubDomains`
  /// for flag `s`. Nothing without ``NodeSettings/httpsListen``: such a node serves no HTTPS to send
  /// anyone to.
  static func routeOptionRules(settings: NodeSettings) -> [String] {
    guard let https = settings.httpsListen else { return [] }
    let port = https.port == 443 ? "" : ":\(https.port)"
    let hsts = "http-response set-header Strict-Transport-Security"
    let hstsSet = "{ ssl_fc } { var(txn.sy_hsts) -m reg ^[0-9]+$ }"
    return [
      "http-request set-var(txn.sy_flags) var(txn.sy_route),field(3,:) if { var(txn.sy_route) -m found }",
      "http-request set-var(txn.sy_hsts) var(txn.sy_route),field(4,:) if { var(txn.sy_route) -m found }",
      "http-request redirect location https://%[var(txn.sy_host)]\(port)%[pathq] code 308"
        + " if !{ ssl_fc } { var(txn.sy_flags) -m sub r } { var(txn.sy_host) -m found }",
      "\(hsts) \"max-age=%[var(txn.sy_hsts)]; includeSubDomains\" if \(hstsSet) { var(txn.sy_flags) -m sub s }",
      "\(hsts) \"max-age=%[var(txn.sy_hsts)]\" if \(hstsSet) !{ var(txn.sy_flags) -m sub s }",
    ]
  }
}
