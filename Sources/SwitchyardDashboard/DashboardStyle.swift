/// The dashboard's style sheet (`/dashboard.css`): system fonts, light and dark by the system's setting.
enum DashboardStyle {
  static let source = #"""
    :root {
      --bg: #f4f6fa; --panel: #ffffff; --text: #1d2433; --muted: #667085; --line: #e3e7ee; --accent: #2457d6;
      --up: #16a36a; --down: #d64045; --drain: #d9940f; --maint: #7b61d1; --missing: #c3c9d4; --pending: #d9940f;
      --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
      color-scheme: light dark;
    }
    @media (prefers-color-scheme: dark) {
      :root { --bg: #12161f; --panel: #1b212d; --text: #e6e9ef; --muted: #98a2b3; --line: #2b3342; --accent: #6b93ff;
        --missing: #4a5366; }
    }
    * { box-sizing: border-box; }
    body { margin: 0; background: var(--bg); color: var(--text);
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
    a { color: var(--accent); text-decoration: none; }
    a:hover { text-decoration: underline; }
    .bar { position: sticky; top: 0; z-index: 2; display: flex; gap: 24px; align-items: center; padding: 10px 24px;
      background: var(--panel); border-bottom: 1px solid var(--line); flex-wrap: wrap; }
    .brand { display: flex; gap: 8px; align-items: center; font-weight: 700; font-size: 17px; }
    nav { display: flex; gap: 16px; }
    .status { margin-left: auto; display: flex; gap: 16px; align-items: center; }
    .muted { color: var(--muted); }
    .badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
      background: var(--line); color: var(--muted); }
    body[data-connected="true"] #connection { background: color-mix(in srgb, var(--up) 18%, transparent);
      color: var(--up); }
    body[data-connected="false"] #connection { background: color-mix(in srgb, var(--down) 18%, transparent);
      color: var(--down); }
    body[data-connected="false"] main { opacity: .55; }
    main { padding: 16px 24px 40px; max-width: 1500px; margin: 0 auto; }
    h2 { font-size: 16px; margin: 26px 0 10px; }
    section { scroll-margin-top: 60px; }
    .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
    .card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
    .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
    .card .figure { font-size: 24px; font-weight: 650; margin-top: 2px; }
    .empty { color: var(--muted); margin: 6px 0; }
    .empty[hidden] { display: none; }
    #warnings { list-style: none; margin: 0; padding: 0; display: grid; gap: 6px; }
    #warnings li { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--drain);
      border-radius: 6px; padding: 7px 12px; overflow-wrap: anywhere; }
    #warnings li[data-kind="not-answering"], #warnings li[data-kind="etcd"], #warnings li[data-kind="pass-failed"] {
      border-left-color: var(--down); }
    #warnings .kind { font: 600 11px var(--mono); color: var(--muted); margin-right: 8px; text-transform: uppercase; }
    .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
    .node { background: var(--panel); border: 1px solid var(--line); border-top: 4px solid var(--missing);
      border-radius: 10px; padding: 12px 16px; }
    .node[data-status="up"] { border-top-color: var(--up); }
    .node[data-status="not-ready"] { border-top-color: var(--drain); }
    .node[data-status="not-answering"] { border-top-color: var(--down); }
    .node[data-status="gone"] { opacity: .6; }
    .node header { display: flex; align-items: baseline; gap: 10px; }
    .node h3 { margin: 0; font-size: 16px; }
    .node .pill { font-size: 12px; font-weight: 600; color: var(--muted); }
    .node[data-status="up"] .pill { color: var(--up); }
    .node[data-status="not-ready"] .pill { color: var(--drain); }
    .node[data-status="not-answering"] .pill { color: var(--down); }
    .node dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 10px 0 0; }
    .node dt { color: var(--muted); }
    .node dd { margin: 0; overflow-wrap: anywhere; }
    .node .problem { color: var(--down); margin: 8px 0 0; overflow-wrap: anywhere; }
    .node .problem:empty { display: none; }
    .tools { display: flex; gap: 16px; align-items: center; margin-bottom: 10px; }
    .tools input[type="search"] { padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; width: 260px;
      background: var(--panel); color: var(--text); }
    .service { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; margin-bottom: 14px;
      overflow: hidden; content-visibility: auto; contain-intrinsic-size: auto 400px; }
    .service table { table-layout: fixed; }
    .service th:nth-child(1) { width: 20%; }
    .service th:nth-child(2) { width: 16%; }
    .service td { overflow: hidden; text-overflow: ellipsis; }
    .service > header { display: flex; gap: 18px; align-items: center; padding: 10px 16px; flex-wrap: wrap;
      border-bottom: 1px solid var(--line); }
    .service h3 { margin: 0; font-size: 15px; }
    .service .facts { color: var(--muted); font-size: 13px; }
    .service .numbers { margin-left: auto; display: flex; gap: 14px; align-items: center; font-size: 13px; }
    .spark { width: 140px; height: 30px; }
    .spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
    .spark polygon { fill: color-mix(in srgb, var(--accent) 15%, transparent); stroke: none; }
    table { border-collapse: collapse; width: 100%; }
    th, td { text-align: left; padding: 5px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: 12px; color: var(--muted); font-weight: 600; }
    tbody tr:last-child td { border-bottom: none; }
    table.list { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; }
    td.id, td.key { font-family: var(--mono); font-size: 13px; overflow-wrap: anywhere; }
    td[data-state] { white-space: nowrap; font-size: 13px; }
    td[data-state] .st { font-weight: 600; }
    td[data-state] .st::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
      margin-right: 6px; background: var(--missing); }
    td[data-state="up"] .st::before { background: var(--up); }
    td[data-state="down"] .st::before { background: var(--down); }
    td[data-state="drain"] .st::before { background: var(--drain); }
    td[data-state="maint"] .st::before { background: var(--maint); }
    td[data-state="down"] .st { color: var(--down); }
    td[data-state="missing"] { color: var(--muted); }
    td[data-state] .meta { color: var(--muted); margin-left: 8px; }
    tr[hidden] { display: none; }
    .progress-pending { color: var(--pending); font-weight: 600; }
    .progress-unknown { color: var(--muted); }
    #timeline { width: 100%; height: 150px; background: var(--panel); border: 1px solid var(--line);
      border-radius: 10px; margin-bottom: 10px; }
    #timeline .grid-line { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
    #timeline .axis { fill: var(--muted); font-size: 10px; }
    #timeline .stem { stroke: var(--up); stroke-width: 2; vector-effect: non-scaling-stroke; }
    #timeline .dot { fill: var(--up); }
    #timeline .pending .stem { stroke: var(--pending); }
    #timeline .pending .dot { fill: var(--pending); }
    footer { color: var(--muted); text-align: center; padding: 20px; font-size: 12px; }

    """#
}
