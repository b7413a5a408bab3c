import SwitchyardCerts

/// What a node needs to serve HTTPS: the key that opens the certificates' sealed keys, and which
/// certificate it serves when a client's SNI matches none.
public struct TLSSettings: Sendable {
  /// The cluster key; without it no certificate from etcd can be opened and only the default one is served.
  public var clusterKey: ClusterKey?
  /// The certificate in etcd served by default (no SNI, or an unknown name); without one, a self-signed
  /// certificate made on the node's first start (``CertificateBundle/selfSigned(now:days:)``).
  public var defaultCertificate: CertificateName?
  /// How often HAProxy's certificates are compared with etcd's even when nothing changed (after a reload
  /// or restart of HAProxy, the files are what it loaded: the same, but this makes sure).
  public var resyncInterval: Duration

  /// Creates settings.
  public init(
    clusterKey: ClusterKey? = nil, defaultCertificate: CertificateName? = nil, resyncInterval: Duration = .seconds(10)
  ) {
    self.clusterKey = clusterKey
    self.defaultCertificate = defaultCertificate
    self.resyncInterval = resyncInterval
  }
}
