// A local stand-in for the Application Load Balancer: one HTTP port per listener, target
// groups of host:port targets health-checked like the ALB does (path, interval, healthy and
// unhealthy thresholds), and requests forwarded round-robin to the healthy targets of the
// group the listener points at. The rehearsal's mock engine drives it from the program's
// aws:lb resources, so the site can be reached while the rehearsal runs.
import * as http from "http";
import { AddressInfo } from "net";

interface Target {
  host: string;
  port: number;
  healthy: boolean;
  successes: number;
  failures: number;
}

interface TargetGroup {
  healthPath: string;
  targets: Map<string, Target>;
  next: number;
}

export interface AlbStandIn {
  /**
   * Opens (or re-points) a listener. Returns its local port (stable across re-pointing).
   * `host` is the Host header targets see: the load balancer's DNS name, as a browser sends it.
   */
  listen(listenerPort: number, targetGroupArn: string | undefined, host?: string): Promise<number>;
  closeListener(listenerPort: number): Promise<void>;
  targetGroup(arn: string, healthPath: string): void;
  removeTargetGroup(arn: string): void;
  attach(arn: string, host: string, port: number): void;
  detach(arn: string, host: string, port: number): void;
  /** The local URL of a listener. */
  url(listenerPort: number): string | undefined;
  /** Which target group a listener forwards to. */
  forwardsTo(listenerPort: number): string | undefined;
  /** Health of a group's targets, e.g. { "10.231.0.10:8001": true }. */
  health(arn: string): Record<string, boolean>;
  close(): Promise<void>;
}

export function startAlbStandIn(
  opts: { intervalMs?: number; healthyThreshold?: number; unhealthyThreshold?: number } = {},
): AlbStandIn {
  const intervalMs = opts.intervalMs ?? 500;
  const healthyThreshold = opts.healthyThreshold ?? 2;
  const unhealthyThreshold = opts.unhealthyThreshold ?? 2;
  const groups = new Map<string, TargetGroup>();
  const listeners = new Map<number, { server: http.Server; port: number; arn?: string; host?: string }>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const check = (g: TargetGroup, t: Target) => {
    const req = http.get({ host: t.host, port: t.port, path: g.healthPath, timeout: 2000, agent }, (res) => {
      res.resume();
      res.on("end", () => record(t, res.statusCode === 200));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => record(t, false));
  };
  const record = (t: Target, ok: boolean) => {
    if (ok) {
      t.failures = 0;
      t.successes++;
      if (t.successes >= healthyThreshold) t.healthy = true;
    } else {
      t.successes = 0;
      t.failures++;
      if (t.failures >= unhealthyThreshold) t.healthy = false;
    }
  };
  const timer = setInterval(() => {
    for (const g of groups.values()) for (const t of g.targets.values()) check(g, t);
  }, intervalMs);

  const forward = (
    listenerPort: number,
    arn: string | undefined,
    host: string | undefined,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => {
    const g = arn ? groups.get(arn) : undefined;
    const healthy = g ? [...g.targets.values()].filter((t) => t.healthy) : [];
    if (!g || healthy.length === 0) {
      res.writeHead(503, { "content-type": "text/plain" }).end("503 Service Temporarily Unavailable\n");
      return;
    }
    const t = healthy[g.next++ % healthy.length];
    const upstream = http.request(
      {
        host: t.host,
        port: t.port,
        method: req.method,
        path: req.url,
        headers: {
          ...req.headers,
          ...(host ? { host } : {}),
          // What the client spoke to the ALB: TLS ends at the load balancer on 443.
          "x-forwarded-proto": listenerPort === 443 ? "https" : "http",
          "x-forwarded-for": req.socket.remoteAddress ?? "",
        },
        agent,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end("502 Bad Gateway\n");
    });
    req.pipe(upstream);
  };

  return {
    async listen(listenerPort, arn, host) {
      const existing = listeners.get(listenerPort);
      if (existing) {
        existing.arn = arn;
        existing.host = host;
        return existing.port;
      }
      const entry: { server: http.Server; port: number; arn?: string; host?: string } = {
        server: http.createServer((req, res) => forward(listenerPort, entry.arn, entry.host, req, res)),
        port: 0,
        arn,
        host,
      };
      entry.server.keepAliveTimeout = 60_000;
      await new Promise<void>((resolve) => entry.server.listen(0, "127.0.0.1", resolve));
      entry.port = (entry.server.address() as AddressInfo).port;
      listeners.set(listenerPort, entry);
      return entry.port;
    },
    async closeListener(listenerPort) {
      const l = listeners.get(listenerPort);
      if (!l) return;
      listeners.delete(listenerPort);
      l.server.closeAllConnections();
      await new Promise((r) => l.server.close(r));
    },
    targetGroup(arn, healthPath) {
      const g = groups.get(arn);
      if (g) g.healthPath = healthPath;
      else groups.set(arn, { healthPath, targets: new Map(), next: 0 });
    },
    removeTargetGroup(arn) {
      groups.delete(arn);
    },
    attach(arn, host, port) {
      const g = groups.get(arn);
      if (!g) throw new Error(`no target group ${arn}`);
      const key = `${host}:${port}`;
      if (!g.targets.has(key)) g.targets.set(key, { host, port, healthy: false, successes: 0, failures: 0 });
    },
    detach(arn, host, port) {
      groups.get(arn)?.targets.delete(`${host}:${port}`);
    },
    url(listenerPort) {
      const l = listeners.get(listenerPort);
      return l ? `http://127.0.0.1:${l.port}` : undefined;
    },
    forwardsTo(listenerPort) {
      return listeners.get(listenerPort)?.arn;
    },
    health(arn) {
      const g = groups.get(arn);
      return Object.fromEntries([...(g?.targets.values() ?? [])].map((t) => [`${t.host}:${t.port}`, t.healthy]));
    },
    async close() {
      clearInterval(timer);
      await Promise.all([...listeners.keys()].map((p) => this.closeListener(p)));
      agent.destroy();
    },
  };
}
