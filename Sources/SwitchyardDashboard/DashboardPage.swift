/// The dashboard's files, served by every controller's admin server from the binary: one HTML document,
/// one script, one style sheet and an icon. Nothing comes from elsewhere (no CDN, no font, no framework).
///
/// The document holds no script and no style of its own, so the Content-Security-Policy
/// (``contentSecurityPolicy``) allows scripts and styles from the same origin alone. The script builds
/// every element from the data with `textContent` and `setAttribute`, never with markup.
///
/// What the browser tests rely on (keep it): `document.body.dataset.connected` is `"true"` or `"false"`;
/// node elements `#nodes [data-node="<id>"]` with `data-status` `up`, `not-ready`, `not-answering` or
/// `gone`; instance rows `#services tr[data-instance="<service>/<id>"]`, each with one cell
/// `td[data-node="<id>"]` per node whose `data-state` is `up`, `down`, `drain`, `maint` or `missing`; recent
/// changes `#changes [data-revision]`; warnings `#warnings li`; and `window.switchyard` with `loadId`,
/// `firstRenderMs`, `updates`, `lastUpdateMs`, `totalUpdateMs` and `snapshotBytes`.
public enum DashboardPage {
  /// One file of the dashboard.
  public struct Asset: Sendable {
    /// The path it is served at.
    public var path: String
    /// Its `Content-Type`.
    public var contentType: String
    /// Its bytes.
    public var body: String
  }

  /// Every file, by path.
  public static let assets: [Asset] = [
    Asset(path: "/", contentType: "text/html; charset=utf-8", body: html),
    Asset(path: "/dashboard.js", contentType: "text/javascript; charset=utf-8", body: DashboardScript.source),
    Asset(path: "/dashboard.css", contentType: "text/css; charset=utf-8", body: DashboardStyle.source),
    Asset(path: "/favicon.svg", contentType: "image/svg+xml", body: icon),
  ]

  /// The policy every dashboard answer carries: only this origin's script, style, images and event
  /// stream; no inline script or style, no frames, no forms, no plugins.
  public static let contentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

  /// Headers every dashboard answer carries besides its content type.
  public static let securityHeaders: [(name: String, value: String)] = [
    ("Content-Security-Policy", contentSecurityPolicy),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
  ]

  /// The document.
  public static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Switchyard</title>
    <link rel="icon" href="/favicon.svg" type="image/svg+xml">
    <link rel="stylesheet" href="/dashboard.css">
    <script src="/dashboard.js" defer></script>
    </head>
    <body data-connected="false">
    <header class="bar">
      <div class="brand"><img src="/favicon.svg" alt="" width="22" height="22"><span>Switchyard</span></div>
      <nav>
        <a href="#nodes-section">Nodes</a>
        <a href="#services-section">Services</a>
        <a href="#routes-section">Routes</a>
        <a href="#changes-section">Changes</a>
        <a href="#warnings-section">Warnings</a>
      </nav>
      <div class="status">
        <span id="connection" class="badge">connecting</span>
        <span class="muted">served by <b id="served-by">…</b></span>
        <span class="muted">etcd revision <b id="etcd-revision">…</b></span>
      </div>
    </header>
    <main>
      <section id="overview" class="cards" aria-label="Overview">
        <div class="card"><div class="label">Nodes up</div><div class="figure" id="sum-nodes">–</div></div>
        <div class="card"><div class="label">Services</div><div class="figure" id="sum-services">–</div></div>
        <div class="card"><div class="label">Instances up everywhere</div><div class="figure" id="sum-instances">–</div></div>
        <div class="card"><div class="label">Requests</div><div class="figure" id="sum-rate">–</div></div>
        <div class="card"><div class="label">Warnings</div><div class="figure" id="sum-warnings">–</div></div>
      </section>
      <section id="warnings-section">
        <h2>Warnings</h2>
        <ul id="warnings"></ul>
        <p class="empty" id="warnings-empty">No warnings.</p>
      </section>
      <section id="nodes-section">
        <h2>Nodes</h2>
        <div id="nodes" class="grid"></div>
      </section>
      <section id="services-section">
        <h2>Services</h2>
        <div class="tools">
          <input id="filter" type="search" placeholder="Filter instances" aria-label="Filter instances">
          <label><input id="problems-only" type="checkbox"> only instances not up everywhere</label>
        </div>
        <div id="services"></div>
      </section>
      <section id="routes-section">
        <h2>Routes</h2>
        <table class="list">
          <thead><tr id="routes-head"></tr></thead>
          <tbody id="routes"></tbody>
        </table>
        <p class="empty" id="routes-empty">No routes in etcd.</p>
      </section>
      <section id="changes-section">
        <h2>Recent changes</h2>
        <svg id="timeline" viewBox="0 0 800 150" role="img"
          aria-label="Changes over time and how long the nodes took to apply them"></svg>
        <table class="list">
          <thead><tr id="changes-head"></tr></thead>
          <tbody id="changes"></tbody>
        </table>
        <p class="empty" id="changes-empty">No change seen since the nodes started.</p>
      </section>
    </main>
    <footer>Read-only. The page updates itself; everything on it comes from etcd and from the nodes' admin endpoints.</footer>
    </body>
    </html>

    """#

  /// The icon: a switch of tracks.
  public static let icon = #"""
    <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2457d6"/>\#
    <path d="M6 24 H26 M6 24 C14 24 16 9 26 9" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round"/>\#
    <circle cx="6" cy="24" r="3" fill="#fff"/></svg>

    """#
}
