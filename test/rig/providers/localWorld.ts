// The local world that plays the AWS resources of the release flow, for the aws stand-in
// provider (aws.ts), which the real engine runs as a plugin and which calls this over HTTP on
// loopback. It runs inside the rehearsal's process, beside what it drives:
//   aws:ec2/instance:Instance          boots a local host (hosts.ts) from the program's user data
//   aws:rds/instance:Instance          a role and database in the local PostgreSQL (postgres.ts)
//   aws:elasticache/replicationGroup:ReplicationGroup  a local Redis with TLS and the AUTH token (redis.ts)
//   aws:ssm/parameter:Parameter        the local S3/SSM stand-in (awsStandIn.ts)
//   aws:s3/bucket:Bucket               a bucket there (versioned by aws:s3/bucketVersioning)
//   aws:lb/*                           the local ALB stand-in (albStandIn.ts)
import { randomBytes } from "crypto";
import * as http from "http";
import * as net from "net";
import { parse } from "yaml";
import { AlbStandIn } from "../albStandIn";
import { AwsStandIn } from "../awsStandIn";
import { HostRig, RigHost } from "../hosts";
import { RigPostgres } from "../postgres";
import { RigRedis, startRedis } from "../redis";
import { WorldCall } from "./aws";
import { ACCOUNT, REGION } from "./invokes";
import { Props } from "./wire";

const hex = (n: number) => randomBytes(n).toString("hex");

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface LocalWorld {
  url: string;
  /** Local hosts by name (h0, h1, ..., bastion), as instances booted them. */
  hosts: Map<string, RigHost>;
  close(): Promise<void>;
}

export interface LocalWorldOptions {
  rig: HostRig;
  pg: RigPostgres;
  aws: AwsStandIn;
  alb: AlbStandIn;
  /** The name browsers use for the site (the domain, else the load balancer's DNS name). */
  domain?: string;
  log: (line: string) => void;
}

export async function startLocalWorld(o: LocalWorldOptions): Promise<LocalWorld> {
  const hosts = new Map<string, RigHost>();
  const ips = new Map<string, string>();
  const lbDns = new Map<string, string>();
  const caches: RigRedis[] = [];

  /** The local Redis's certificate in the host's own CA store (its /etc is its own), as Amazon's CA is on EC2. */
  async function trust(host: RigHost, cache: RigRedis): Promise<void> {
    const r = await host.exec(["bash", "-c", "cat >>/etc/ssl/certs/ca-certificates.crt"], { input: cache.certificate });
    if (r.code !== 0) o.log(`      ${host.name}: could not trust the local Redis's certificate: ${r.stderr.trim()}`);
  }

  async function boot(name: string, i: Props): Promise<{ id: string; outs: Props }> {
    const userData = String(i.userData ?? "");
    if (!userData.startsWith("#cloud-config\n")) throw new Error(`${name}: user data is not cloud-config`);
    const cloud = parse(userData) as {
      ssh_keys: { ed25519_private: string; ed25519_public: string };
      ssh_authorized_keys: string[];
    };
    const tags = (i.tags ?? {}) as Record<string, string>;
    const hostName = tags["greenlight:host"];
    if (!hostName) throw new Error(`${name}: the instance has no greenlight:host tag to tell which host it is`);
    o.log(`      boot ${name} as local host ${hostName}`);
    const host = await o.rig.addHost({
      name: hostName,
      hostKey: { privateKey: cloud.ssh_keys.ed25519_private, publicKey: cloud.ssh_keys.ed25519_public },
      // cloud-init authorises every listed key for the admin user, options included.
      adminAuthorizedKey: cloud.ssh_authorized_keys.join("\n"),
    });
    hosts.set(hostName, host);
    for (const cache of caches) await trust(host, cache);
    const id = `i-${hex(8)}`;
    ips.set(id, host.ip);
    return {
      id,
      outs: {
        privateIp: host.ip,
        publicIp: i.associatePublicIpAddress ? host.ip : "",
        arn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${id}`,
      },
    };
  }

  async function listener(c: WorldCall): Promise<Props> {
    const action = ((c.inputs.defaultActions ?? []) as { type: string; targetGroupArn?: string }[])[0];
    if (action?.type === "forward") {
      const host = o.domain ?? lbDns.get(String(c.inputs.loadBalancerArn));
      await o.alb.listen(Number(c.inputs.port), action.targetGroupArn, host);
    }
    return {
      arn:
        (c.olds?.arn as string | undefined) ??
        `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:listener/app/${c.name}/${hex(8)}`,
    };
  }

  async function play(c: WorldCall): Promise<{ id?: string; outs?: Props }> {
    const i = c.inputs;
    switch (`${c.type} ${c.op}`) {
      case "aws:ec2/instance:Instance create":
        return boot(c.name, i);
      case "aws:rds/instance:Instance create": {
        await o.pg.createRoleAndDatabase(String(i.username), String(i.password));
        const address = o.rig.bridgeIp;
        return {
          id: String(i.identifier ?? `${c.name}-${hex(4)}`),
          outs: { address, port: o.pg.port, endpoint: `${address}:${o.pg.port}` },
        };
      }
      case "aws:elasticache/replicationGroup:ReplicationGroup create": {
        // ElastiCache's endpoint certificate is one Debian's CA store trusts; this one is
        // self-signed, so every host (booted or still to boot) adds it to its own store, and
        // the site verifies it as REDIS_URL asks (ssl_cert_reqs=required).
        const cache = await startRedis({
          listen: o.rig.bridgeIp,
          port: await freePort(),
          password: String(i.authToken),
        });
        caches.push(cache);
        for (const h of hosts.values()) await trust(h, cache);
        const id = String(i.replicationGroupId ?? `${c.name}-${hex(4)}`);
        return {
          id,
          outs: {
            primaryEndpointAddress: cache.host,
            port: cache.port,
            memberClusters: [`${id}-001`],
            arn: `arn:aws:elasticache:${REGION}:${ACCOUNT}:replicationgroup:${id}`,
          },
        };
      }
      case "aws:ssm/parameter:Parameter create":
      case "aws:ssm/parameter:Parameter update":
        o.aws.putParameter(String(i.name), String(i.value ?? i.insecureValue), i.type as "String" | "SecureString");
        return {
          id: String(i.name),
          outs: { arn: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${String(i.name)}`, version: 1 },
        };
      case "aws:ssm/parameter:Parameter delete":
        o.aws.deleteParameter(String(i.name));
        return {};
      case "aws:s3/bucket:Bucket create": {
        const name = String(i.bucket ?? `${c.name}-${hex(4)}`).toLowerCase();
        o.aws.createBucket(name);
        return { id: name, outs: { bucket: name, arn: `arn:aws:s3:::${name}` } };
      }
      case "aws:s3/bucketVersioning:BucketVersioning create":
        o.aws.enableVersioning(String(i.bucket));
        return { id: String(i.bucket) };
      case "aws:lb/loadBalancer:LoadBalancer create": {
        const arn = `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/app/${c.name}/${hex(8)}`;
        const dnsName = `${c.name}-${parseInt(hex(3), 16)}.${REGION}.elb.amazonaws.com`;
        lbDns.set(arn, dnsName);
        return { id: arn, outs: { arn, dnsName, zoneId: "Z32O12XQLNTSW2", arnSuffix: arn.split(":loadbalancer/")[1] } };
      }
      case "aws:lb/targetGroup:TargetGroup create":
      case "aws:lb/targetGroup:TargetGroup update": {
        const arn =
          (c.olds?.arn as string | undefined) ??
          `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/${c.name}/${hex(8)}`;
        o.alb.targetGroup(arn, String((i.healthCheck as { path?: string } | undefined)?.path ?? "/"));
        return { id: arn, outs: { arn, arnSuffix: arn.split(":")[5] } };
      }
      case "aws:lb/targetGroup:TargetGroup delete":
        o.alb.removeTargetGroup(String(c.olds?.arn));
        return {};
      case "aws:lb/targetGroupAttachment:TargetGroupAttachment create":
        o.alb.attach(String(i.targetGroupArn), ipOf(String(i.targetId)), Number(i.port));
        return { id: `${String(i.targetGroupArn)}-${String(i.targetId)}-${String(i.port)}` };
      case "aws:lb/targetGroupAttachment:TargetGroupAttachment delete":
        o.alb.detach(String(i.targetGroupArn), ipOf(String(i.targetId)), Number(i.port));
        return {};
      case "aws:lb/listener:Listener create":
      case "aws:lb/listener:Listener update": {
        const outs = await listener(c);
        return { id: String(outs.arn), outs };
      }
      case "aws:lb/listener:Listener delete":
        await o.alb.closeListener(Number(i.port));
        return {};
      default:
        // Updates that AWS applies in place and that change nothing locally (an instance's
        // tags, a bucket's settings), and deletes of what the local world keeps until it stops.
        return {};
    }
  }

  function ipOf(instanceId: string): string {
    const ip = ips.get(instanceId);
    if (!ip) throw new Error(`no local host for instance ${instanceId}`);
    return ip;
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      let call: WorldCall;
      try {
        call = JSON.parse(Buffer.concat(chunks).toString()) as WorldCall;
      } catch {
        reply(400, { error: "not JSON" });
        return;
      }
      play(call).then(
        (r) => reply(200, r),
        (e: unknown) => reply(500, { error: e instanceof Error ? e.message : String(e) }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    hosts,
    close: async () => {
      for (const cache of caches.splice(0)) await cache.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
