// A fake WebSocket (the test plays the server) and fake timers.

export class FakeSocket {
  static instances = [];

  static reset() {
    FakeSocket.instances = [];
  }

  static get last() {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }

  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.readyState = 0;
    this.sent = [];
    this.seq = 0;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    FakeSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000) {
    this.serverClose(code);
  }

  // What the server does:
  push(type, data) {
    this.seq += 1;
    this.onmessage?.({
      data: JSON.stringify({ type, data, timestamp: "2026-12-05T22:36:12Z", connection_id: "c1", seq: this.seq }),
    });
  }

  welcome() {
    this.readyState = 1;
    this.onopen?.({});
    this.push("connection", { status: "connected", connection_id: "c1", authenticated: true, user_id: 2 });
  }

  serverClose(code) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, wasClean: code === 1000 });
  }

  sentOfType(type) {
    return this.sent.filter((m) => m.type === type).map((m) => m.data);
  }
}

export class FakeTimers {
  constructor() {
    this.now = 0;
    this.nextId = 1;
    this.pending = new Map();
  }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.pending.set(id, { fn, at: this.now + ms, every: null });
    return id;
  }

  setInterval(fn, ms) {
    const id = this.nextId++;
    this.pending.set(id, { fn, at: this.now + ms, every: ms });
    return id;
  }

  clearTimeout(id) {
    this.pending.delete(id);
  }

  clearInterval(id) {
    this.pending.delete(id);
  }

  /** Runs everything due within `ms`. */
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.pending) if (timer.at <= until && (!next || timer.at < next[1].at)) next = [id, timer];
      if (!next) break;
      const [id, timer] = next;
      this.now = timer.at;
      if (timer.every) timer.at += timer.every;
      else this.pending.delete(id);
      timer.fn();
    }
    this.now = until;
  }
}
