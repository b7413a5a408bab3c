/// The dashboard's script (`/dashboard.js`): listens to `/api/events` and keeps the page in step with each
/// `cluster` snapshot, touching only the elements whose data changed.
///
/// Everything from the server is put in with `textContent` and `setAttribute`; URLs become links only when
/// they start with `http://` or `https://`. The script talks only to the controller that served it.
enum DashboardScript {
  static let source = #"""
    'use strict';
    (function () {
      const SVG = 'http://www.w3.org/2000/svg';
      const HISTORY = 60;
      const random = new Uint8Array(8);
      crypto.getRandomValues(random);
      const stats = {
        loadId: Array.from(random, (b) => b.toString(16).padStart(2, '0')).join(''),
        firstRenderMs: null,
        updates: 0,
        lastUpdateMs: 0,
        totalUpdateMs: 0,
        snapshotBytes: 0,
      };
      window.switchyard = stats;

      const byId = (id) => document.getElementById(id);
      const encoder = new TextEncoder();
      const lists = new WeakMap();
      let lastView = null;
      let answering = [];
      let columnsKey = null;

      // ---- DOM helpers: text and attributes only, and only when they differ.

      function setText(node, value) {
        const text = value === null || value === undefined ? '' : String(value);
        if (node.textContent !== text) node.textContent = text;
      }

      function setAttr(node, name, value) {
        if (value === null || value === undefined || value === false) {
          if (node.hasAttribute(name)) node.removeAttribute(name);
          return;
        }
        const text = value === true ? '' : String(value);
        if (node.getAttribute(name) !== text) node.setAttribute(name, text);
      }

      function make(tag, className, text) {
        const node = document.createElement(tag);
        if (className) node.className = className;
        if (text !== undefined && text !== null) node.textContent = String(text);
        return node;
      }

      function svg(tag, attributes) {
        const node = document.createElementNS(SVG, tag);
        for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
        return node;
      }

      // Keeps the children of container in the order of items, one element per key: creates, updates, moves
      // and removes only what changed.
      function sync(container, items, keyOf, create, update) {
        let map = lists.get(container);
        if (!map) {
          map = new Map();
          lists.set(container, map);
        }
        const seen = new Set();
        let previous = null;
        for (const item of items) {
          const key = keyOf(item);
          if (seen.has(key)) continue;
          seen.add(key);
          let node = map.get(key);
          if (!node) {
            node = create(item, key);
            map.set(key, node);
          }
          update(node, item);
          const expected = previous ? previous.nextSibling : container.firstChild;
          if (node !== expected) container.insertBefore(node, expected);
          previous = node;
        }
        for (const [key, node] of map) {
          if (!seen.has(key)) {
            node.remove();
            map.delete(key);
          }
        }
      }

      function reset(container) {
        lists.delete(container);
        container.replaceChildren();
      }

      // ---- Formats.

      function rate(value) {
        if (typeof value !== 'number') return '–';
        return (value >= 100 ? String(Math.round(value)) : value.toFixed(1)) + '/s';
      }

      function duration(ms) {
        if (ms < 1000) return Math.round(ms) + ' ms';
        if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
        if (ms < 3600000) return Math.round(ms / 60000) + ' min';
        return (ms / 3600000).toFixed(1) + ' h';
      }

      function ago(ms) {
        return duration(Math.max(0, Date.now() - ms)) + ' ago';
      }

      function clock(ms) {
        const date = new Date(ms);
        const pad = (n, width) => String(n).padStart(width, '0');
        return pad(date.getHours(), 2) + ':' + pad(date.getMinutes(), 2) + ':' + pad(date.getSeconds(), 2) + '.' +
          pad(date.getMilliseconds(), 3);
      }

      function safeURL(url) {
        return typeof url === 'string' && /^https?:\/\/[^\s"'<>]+$/.test(url) ? url : null;
      }

      function plural(count, word) {
        return count + ' ' + word + (count === 1 ? '' : 's');
      }

      function describeEvents(change) {
        const parts = change.events.map((event) => event.kind + ' ' + event.key);
        if (change.eventCount > change.events.length) parts.push('and ' + (change.eventCount - change.events.length) +
          ' more');
        return parts.join(', ');
      }

      // ---- Overview and warnings.

      function upEverywhere(instance) {
        return instance.cells.every((cell, index) => !answering[index] || (cell !== null && cell[0] === 'up'));
      }

      function renderOverview(view) {
        const up = view.nodes.filter((node) => node.status === 'up').length;
        setText(byId('sum-nodes'), up + ' / ' + view.nodes.length);
        setText(byId('sum-services'), view.services.length);
        let total = 0;
        let everywhere = 0;
        let requests = 0;
        for (const service of view.services) {
          requests += service.rate;
          for (const instance of service.instances) {
            total += 1;
            if (upEverywhere(instance)) everywhere += 1;
          }
        }
        setText(byId('sum-instances'), everywhere + ' / ' + total);
        setText(byId('sum-rate'), rate(requests));
        setText(byId('sum-warnings'), view.warnings.length);
        setText(byId('served-by'), view.servedBy);
        const revision = view.etcd.revision;
        setText(byId('etcd-revision'), typeof revision === 'number' ? revision : 'unknown');
      }

      function renderWarnings(view) {
        sync(byId('warnings'), view.warnings,
          (warning) => warning.kind + '\u0000' + (warning.node || '') + '\u0000' + warning.text,
          (warning) => {
            const item = make('li');
            item.setAttribute('data-kind', warning.kind);
            if (warning.node) item.setAttribute('data-warning-node', warning.node);
            item.append(make('span', 'kind', warning.kind), make('span', null, warning.text));
            return item;
          },
          () => {});
        setAttr(byId('warnings-empty'), 'hidden', view.warnings.length > 0);
      }

      // ---- Nodes.

      const STATUS_TEXT = { up: 'up', 'not-ready': 'not ready', 'not-answering': 'not answering', gone: 'gone' };

      function applied(node) {
        if (typeof node.appliedRevision !== 'number') return '–';
        let text = 'revision ' + node.appliedRevision;
        if (node.status !== 'up' && node.status !== 'not-ready') return text + ' (last known)';
        if (!node.pending) return text + ', in step';
        text += ', ' + plural(node.pending, 'change') + ' behind';
        if (node.pendingSince) text += ' for ' + duration(Math.max(0, Date.now() - node.pendingSince));
        return text;
      }

      const NODE_FIELDS = [
        ['Applied', applied],
        ['Requests', (node) => rate(node.rate)],
        ['Reloads', (node) => typeof node.reloads !== 'number' ? '–' : String(node.reloads) +
          (node.lastReloadAt ? ', last ' + ago(node.lastReloadAt) : '') +
          (node.lastReloadReason ? ': ' + node.lastReloadReason : '')],
        ['HAProxy', (node) => (node.haproxyVersion || '–') + (node.haproxyRunning === false ? ' (not running)' : '') +
          (node.haproxyRestarts ? ', ' + plural(node.haproxyRestarts, 'restart') : '')],
        ['Switchyard', (node) => node.switchyardVersion || '–'],
        ['etcd member', (node) => node.etcdMember ?
          node.etcdMember + (node.etcdConnected === false ? ' (unreachable)' : '') : '–'],
        ['etcd key', (node) => node.registered ? 'present' : 'missing'],
        ['Listens on', (node) => [node.listen, node.stats ? 'stats ' + node.stats : null].filter(Boolean).join(', ') ||
          '–'],
        ['Admin', null],
        ['Started', (node) => node.started ? ago(node.started * 1000) : '–'],
      ];

      function createNode(node) {
        const card = make('article', 'node');
        card.setAttribute('data-node', node.id);
        const header = make('header');
        const title = make('h3', null, node.id);
        const pill = make('span', 'pill');
        header.append(title, pill);
        const list = make('dl');
        const values = [];
        for (const [label] of NODE_FIELDS) {
          const value = make('dd');
          list.append(make('dt', null, label), value);
          values.push(value);
        }
        const link = make('a');
        values[NODE_FIELDS.findIndex(([label]) => label === 'Admin')].append(link);
        const problem = make('p', 'problem');
        card.append(header, list, problem);
        card.refs = { pill, values, link, problem };
        return card;
      }

      function updateNode(card, node) {
        const refs = card.refs;
        setAttr(card, 'data-status', node.status);
        setText(refs.pill, STATUS_TEXT[node.status] || node.status);
        NODE_FIELDS.forEach(([, value], index) => {
          if (value) setText(refs.values[index], value(node));
        });
        const url = safeURL(node.adminURL);
        setAttr(refs.link, 'href', url ? url + '/' : null);
        setText(refs.link, node.adminURL || '–');
        const problems = [node.problem, node.notReadyReasons.join('; '), node.lastError].filter(Boolean);
        setText(refs.problem, problems.join(' — '));
      }

      function renderNodes(view) {
        sync(byId('nodes'), view.nodes, (node) => node.id, createNode, updateNode);
      }

      // ---- Services: one table per service, one row per instance, one cell per node.

      function createService(service, ids) {
        const box = make('section', 'service');
        box.setAttribute('data-service', service.name);
        const header = make('header');
        const facts = make('span', 'facts');
        const numbers = make('div', 'numbers');
        const spark = svg('svg', { class: 'spark', viewBox: '0 0 140 30', role: 'img' });
        const sparkTitle = svg('title');
        const area = svg('polygon');
        const line = svg('polyline');
        spark.append(sparkTitle, area, line);
        const rateText = make('b');
        const sessions = make('span');
        const errors = make('span');
        const count = make('span');
        numbers.append(spark, rateText, sessions, errors, count);
        header.append(make('h3', null, service.name), facts, numbers);
        const table = make('table');
        const headRow = make('tr');
        headRow.append(make('th', null, 'Instance'), make('th', null, 'Address'));
        for (const id of ids) headRow.append(make('th', null, 'on ' + id));
        const head = make('thead');
        head.append(headRow);
        const body = make('tbody');
        table.append(head, body);
        box.append(header, table);
        box.refs = { facts, rateText, sessions, errors, count, sparkTitle, area, line, body };
        return box;
      }

      function drawSpark(refs, history) {
        const points = history.length ? history : [0];
        const max = Math.max(1, ...points);
        const step = 140 / (HISTORY - 1);
        const offset = 140 - step * (points.length - 1);
        const coordinates = points.map((value, index) =>
          (offset + index * step).toFixed(1) + ',' + (29 - (value / max) * 27).toFixed(1)).join(' ');
        setAttr(refs.line, 'points', coordinates);
        setAttr(refs.area, 'points', offset.toFixed(1) + ',30 ' + coordinates + ' 140,30');
        setText(refs.sparkTitle, 'Requests per second over the last ' + points.length + ' s; the top is ' +
          rate(max));
      }

      function updateService(box, service, ids) {
        const refs = box.refs;
        setText(refs.facts, [service.mode, service.balance, service.checkPath ? 'check ' + service.checkPath : null,
          service.port ? 'port ' + service.port : null].filter(Boolean).join(' · '));
        setText(refs.rateText, rate(service.rate));
        setText(refs.sessions, plural(service.sessions, 'session'));
        setText(refs.errors, service.errors5xx + ' 5xx');
        setText(refs.count, plural(service.instances.length, 'instance'));
        drawSpark(refs, service.history);
        sync(refs.body, service.instances, (instance) => instance.id,
          (instance) => createRow(service.name, instance, ids), (row, instance) => updateRow(row, instance, ids));
      }

      function createRow(serviceName, instance, ids) {
        const row = make('tr');
        row.setAttribute('data-instance', serviceName + '/' + instance.id);
        const address = make('td', 'id');
        row.append(make('td', 'id', instance.id), address);
        const cells = ids.map((id) => {
          const cell = make('td');
          cell.setAttribute('data-node', id);
          const state = make('span', 'st');
          const meta = make('span', 'meta');
          cell.append(state, meta);
          cell.refs = { state, meta };
          row.append(cell);
          return cell;
        });
        row.refs = { address, cells, signature: null, notUp: false };
        return row;
      }

      function updateRow(row, instance, ids) {
        const signature = instance.address + '\u0000' + JSON.stringify(instance.cells) + '\u0000' +
          answering.join();
        if (row.refs.signature === signature) return;
        row.refs.signature = signature;
        row.refs.notUp = !upEverywhere(instance);
        setText(row.refs.address, instance.address);
        row.refs.cells.forEach((cell, index) => {
          const value = instance.cells[index];
          if (!value) {
            setAttr(cell, 'data-state', 'missing');
            setText(cell.refs.state, '–');
            setText(cell.refs.meta, '');
            setAttr(cell, 'title', ids[index] + ' does not run it');
            return;
          }
          const [state, weight, sessions, requests, check, errors, leaving] = value;
          setAttr(cell, 'data-state', state);
          setText(cell.refs.state, leaving ? state + ' (leaving)' : state);
          setText(cell.refs.meta, rate(requests) + ' · ' + sessions + ' sess · w' + weight + (check ? ' · ' + check : ''));
          setAttr(cell, 'title', ids[index] + ': ' + state + ', weight ' + weight + ', ' + plural(sessions, 'session') +
            ', ' + rate(requests) + ', ' + errors + ' 5xx' + (check ? ', last check ' + check : '') +
            (leaving ? '; it left etcd and drains' : ''));
        });
      }

      let filterWasOn = false;

      function applyFilter() {
        const query = byId('filter').value.trim().toLowerCase();
        const problemsOnly = byId('problems-only').checked;
        const on = query !== '' || problemsOnly;
        if (!on && !filterWasOn) return;
        filterWasOn = on;
        for (const box of byId('services').children) {
          let visible = 0;
          for (const row of box.refs.body.children) {
            const text = row.getAttribute('data-instance').toLowerCase() + ' ' + row.refs.address.textContent;
            const show = (!query || text.includes(query)) && (!problemsOnly || row.refs.notUp);
            setAttr(row, 'hidden', !show);
            if (show) visible += 1;
          }
          setAttr(box, 'hidden', on && visible === 0);
        }
      }

      function renderServices(view) {
        const container = byId('services');
        const ids = view.nodes.map((node) => node.id);
        const key = ids.join('\u0000');
        if (key !== columnsKey) {
          reset(container);
          columnsKey = key;
        }
        sync(container, view.services, (service) => service.name, (service) => createService(service, ids),
          (box, service) => updateService(box, service, ids));
        applyFilter();
      }

      // ---- Routes.

      function renderHead(row, labels) {
        sync(row, labels, (label) => label, (label) => make('th', null, label), () => {});
      }

      function renderRoutes(view) {
        const ids = view.nodes.map((node) => node.id);
        renderHead(byId('routes-head'), ['Route', 'Hosts', 'Path prefix', 'Service'].concat(ids.map((id) => 'on ' + id)));
        sync(byId('routes'), view.routes, (route) => route.name + '\u0000' + ids.join('\u0000'), (route) => {
          const row = make('tr');
          row.setAttribute('data-route', route.name);
          const cells = [];
          for (let index = 0; index < 4 + ids.length; index += 1) {
            const cell = make('td', index < 3 ? 'id' : null);
            row.append(cell);
            cells.push(cell);
          }
          row.refs = { cells };
          return row;
        }, (row, route) => {
          const values = [route.name, route.hosts.length ? route.hosts.join(', ') : 'any host',
            route.pathPrefix + (route.stripPrefix ? ' (stripped)' : ''), route.service]
            .concat(route.targets.map((target) => target === null || target === undefined ? '–' : target));
          values.forEach((value, index) => setText(row.refs.cells[index], value));
        });
        setAttr(byId('routes-empty'), 'hidden', view.routes.length > 0);
      }

      // ---- Changes and the timeline.

      function progressText(progress) {
        if (typeof progress === 'number') return ['in ' + duration(progress), 'progress-applied'];
        if (progress === 'applied') return ['applied', 'progress-applied'];
        if (progress === 'pending') return ['pending', 'progress-pending'];
        return ['–', 'progress-unknown'];
      }

      function renderChanges(view) {
        const ids = view.nodes.map((node) => node.id);
        renderHead(byId('changes-head'), ['Revision', 'Seen', 'Change'].concat(ids.map((id) => 'on ' + id),
          ['All nodes']));
        sync(byId('changes'), view.changes, (change) => change.revision + '\u0000' + ids.join('\u0000'), (change) => {
          const row = make('tr');
          row.setAttribute('data-revision', String(change.revision));
          const cells = [];
          for (let index = 0; index < 4 + ids.length; index += 1) {
            const cell = make('td', index === 2 ? 'key' : null);
            row.append(cell);
            cells.push(cell);
          }
          row.refs = { cells, signature: null };
          return row;
        }, (row, change) => {
          const signature = JSON.stringify(change);
          if (row.refs.signature === signature) return;
          row.refs.signature = signature;
          const cells = row.refs.cells;
          setText(cells[0], change.revision);
          setText(cells[1], clock(change.seenAt));
          setText(cells[2], describeEvents(change));
          change.progress.forEach((progress, index) => {
            const [text, className] = progressText(progress);
            setText(cells[3 + index], text);
            setAttr(cells[3 + index], 'class', className);
          });
          const pending = change.progress.includes('pending');
          const all = cells[3 + ids.length];
          setText(all, pending ? 'pending' : typeof change.convergedAfter === 'number' ?
            'in ' + duration(change.convergedAfter) : 'applied');
          setAttr(all, 'class', pending ? 'progress-pending' : 'progress-applied');
        });
        setAttr(byId('changes-empty'), 'hidden', view.changes.length > 0);
        drawTimeline(view);
      }

      // Read once and on resize: reading a width after the page changed would make the browser lay out
      // every table at once, in the middle of an update.
      let timelineWidth = 800;
      function measureTimeline() {
        timelineWidth = Math.max(320, Math.round(byId('timeline').getBoundingClientRect().width || 800));
      }

      function drawTimeline(view) {
        const chart = byId('timeline');
        const width = timelineWidth;
        const height = 150;
        setAttr(chart, 'viewBox', '0 0 ' + width + ' ' + height);
        const now = Date.now();
        let start = now - 60000;
        for (const change of view.changes) start = Math.min(start, change.seenAt);
        const span = Math.max(1, now - start);
        const left = 52;
        const right = 14;
        const top = 10;
        const plotWidth = width - left - right;
        const plotHeight = height - top - 24;
        const y = (ms) => top + plotHeight - (Math.log10(Math.min(Math.max(ms, 1), 10000)) / 4) * plotHeight;
        const parts = [];
        for (const [ms, label] of [[1, '1 ms'], [10, '10 ms'], [100, '100 ms'], [1000, '1 s'], [10000, '10 s']]) {
          parts.push(svg('line', { class: 'grid-line', x1: left, x2: width - right, y1: y(ms), y2: y(ms) }));
          const text = svg('text', { class: 'axis', x: left - 6, y: y(ms) + 3, 'text-anchor': 'end' });
          text.textContent = label;
          parts.push(text);
        }
        const from = svg('text', { class: 'axis', x: left, y: height - 6 });
        from.textContent = clock(start).slice(0, 8);
        const to = svg('text', { class: 'axis', x: width - right, y: height - 6, 'text-anchor': 'end' });
        to.textContent = 'now';
        const caption = svg('text', { class: 'axis', x: left + plotWidth / 2, y: height - 6, 'text-anchor': 'middle' });
        caption.textContent = 'each change at the time it was seen, as high as the time until every node had it';
        parts.push(from, to, caption);
        for (const change of view.changes.slice().reverse()) {
          const x = left + ((change.seenAt - start) / span) * plotWidth;
          const pending = change.progress.includes('pending');
          const timed = typeof change.convergedAfter === 'number';
          const delay = pending ? Math.max(1, now - change.seenAt) : timed ? change.convergedAfter : 1;
          const group = svg('g', { class: pending ? 'pending' : 'converged' });
          group.append(svg('line', { class: 'stem', x1: x, x2: x, y1: top + plotHeight, y2: y(delay) }),
            svg('circle', { class: 'dot', cx: x, cy: y(delay), r: 3.5 }));
          const title = svg('title');
          title.textContent = 'revision ' + change.revision + ' at ' + clock(change.seenAt) + ': ' +
            describeEvents(change) + (pending ? '; pending for ' + duration(delay) :
              timed ? '; every node had it after ' + duration(delay) : '; applied');
          group.append(title);
          parts.push(group);
        }
        chart.replaceChildren(...parts);
      }

      // ---- One snapshot.

      function render(view) {
        answering = view.nodes.map((node) => node.status === 'up' || node.status === 'not-ready');
        renderOverview(view);
        renderWarnings(view);
        renderNodes(view);
        renderServices(view);
        renderRoutes(view);
        renderChanges(view);
      }

      function receive(data) {
        const started = performance.now();
        let view;
        try {
          view = JSON.parse(data);
        } catch (error) {
          return;
        }
        render(view);
        lastView = view;
        const took = performance.now() - started;
        stats.updates += 1;
        stats.lastUpdateMs = took;
        stats.totalUpdateMs += took;
        stats.snapshotBytes = encoder.encode(data).length;
        if (stats.firstRenderMs === null) stats.firstRenderMs = performance.now();
      }

      // ---- The connection: server-sent events from the controller that served the page.

      let source = null;
      let retryMs = 1000;
      let retryTimer = null;

      function setConnected(connected) {
        document.body.dataset.connected = connected ? 'true' : 'false';
        setText(byId('connection'), connected ? 'live' : 'disconnected, reconnecting');
      }

      function connect() {
        if (source) source.close();
        source = new EventSource('/api/events');
        source.addEventListener('open', () => {
          retryMs = 1000;
          setConnected(true);
        });
        source.addEventListener('cluster', (event) => receive(event.data));
        source.addEventListener('error', () => {
          setConnected(false);
          if (source.readyState === EventSource.CLOSED) {
            clearTimeout(retryTimer);
            retryTimer = setTimeout(connect, retryMs);
            retryMs = Math.min(retryMs * 2, 10000);
          }
        });
      }

      measureTimeline();
      window.addEventListener('resize', () => {
        measureTimeline();
        if (lastView) drawTimeline(lastView);
      });
      byId('filter').addEventListener('input', applyFilter);
      byId('problems-only').addEventListener('change', applyFilter);
      // Ages ("3 s ago") and the timeline's "now" move on between snapshots.
      setInterval(() => {
        if (lastView && !document.hidden) {
          renderNodes(lastView);
          drawTimeline(lastView);
        }
      }, 1000);
      setConnected(false);
      connect();
    })();

    """#
}
