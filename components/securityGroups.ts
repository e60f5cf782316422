import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { COLOURS, SLOT_PORTS } from "./config";

export interface SecurityGroupsArgs {
  vpcId: pulumi.Input<string>;
  /** Who may reach SSH (hosts or bastion) and the test listener. Never 0.0.0.0/0 (config refuses it). */
  operatorCidrs: string[];
  /** Hosts sit in private subnets; SSH reaches them only from the bastion's group. */
  privateHosts: boolean;
  https: boolean;
  testListenerPort?: number;
  /** Redis (ElastiCache): a group of its own, 6379 from the hosts only. */
  cache?: boolean;
}

const WORLD = "0.0.0.0/0";
/** Redis's port (ElastiCache's default). */
export const REDIS_PORT = 6379;
/** Rule names carry the CIDR, so removing one operator CIDR does not renumber the others. */
const cidrId = (c: string) => c.replace(/[./]/g, "-");

/**
 * The chain: internet -> ALB (80/443) -> hosts (slot ports only from the ALB; 22 only from
 * operators or the bastion) -> RDS (5432 only from the hosts). Rules are separate resources so
 * the groups can name each other without a cycle; a group with no rule allows nothing.
 */
export class SecurityGroups extends pulumi.ComponentResource {
  readonly alb: aws.ec2.SecurityGroup;
  readonly hosts: aws.ec2.SecurityGroup;
  readonly db: aws.ec2.SecurityGroup;
  readonly bastion?: aws.ec2.SecurityGroup;
  readonly cache?: aws.ec2.SecurityGroup;

  constructor(name: string, args: SecurityGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:network:SecurityGroups", name, {}, opts);
    const parent = { parent: this };
    const group = (role: string, description: string) =>
      new aws.ec2.SecurityGroup(
        `${name}-${role}`,
        { vpcId: args.vpcId, description, revokeRulesOnDelete: true, tags: { Name: `${name}-${role}` } },
        parent,
      );
    this.alb = group("alb", "greenlight load balancer: 80/443 from the internet");
    this.hosts = group("hosts", "greenlight hosts: slot ports from the ALB, SSH from operators or the bastion");
    this.db = group("db", "greenlight database: 5432 from the hosts only");
    if (args.cache) this.cache = group("cache", `greenlight Redis: ${REDIS_PORT} from the hosts only`);
    if (args.privateHosts) this.bastion = group("bastion", "greenlight bastion: SSH from operators only");

    type Peer = { cidr: string } | { group: aws.ec2.SecurityGroup };
    const peer = (p: Peer) => ("cidr" in p ? { cidrIpv4: p.cidr } : { referencedSecurityGroupId: p.group.id });
    const rule =
      (direction: "in" | "out") =>
      (role: string, sg: aws.ec2.SecurityGroup, id: string, port: number, other: Peer, description: string) => {
        const ruleArgs = { securityGroupId: sg.id, ipProtocol: "tcp", fromPort: port, toPort: port, description };
        return direction === "in"
          ? new aws.vpc.SecurityGroupIngressRule(`${name}-${role}-in-${id}`, { ...ruleArgs, ...peer(other) }, parent)
          : new aws.vpc.SecurityGroupEgressRule(`${name}-${role}-out-${id}`, { ...ruleArgs, ...peer(other) }, parent);
      };
    const ingress = rule("in");
    const egress = rule("out");

    // Internet -> ALB.
    ingress("alb", this.alb, "http", 80, { cidr: WORLD }, "HTTP (redirected to HTTPS when a certificate exists)");
    if (args.https) ingress("alb", this.alb, "https", 443, { cidr: WORLD }, "HTTPS");
    if (args.testListenerPort !== undefined) {
      args.operatorCidrs.forEach((c) =>
        ingress(
          "alb",
          this.alb,
          `test-${cidrId(c)}`,
          args.testListenerPort!,
          { cidr: c },
          "test listener (idle colour), operators",
        ),
      );
    }
    // ALB -> hosts, on the slot ports only.
    for (const colour of COLOURS) {
      egress("alb", this.alb, colour, SLOT_PORTS[colour], { group: this.hosts }, `${colour} slot on the hosts`);
      ingress("hosts", this.hosts, colour, SLOT_PORTS[colour], { group: this.alb }, `${colour} slot from the ALB`);
    }
    // SSH: operators -> hosts, or operators -> bastion -> hosts.
    if (this.bastion) {
      args.operatorCidrs.forEach((c) =>
        ingress("bastion", this.bastion!, `ssh-${cidrId(c)}`, 22, { cidr: c }, "SSH from operators"),
      );
      egress("bastion", this.bastion, "ssh", 22, { group: this.hosts }, "SSH to the hosts");
      ingress("hosts", this.hosts, "ssh", 22, { group: this.bastion }, "SSH from the bastion");
      egress("bastion", this.bastion, "https", 443, { cidr: WORLD }, "security updates");
      egress("bastion", this.bastion, "http", 80, { cidr: WORLD }, "Debian mirrors");
    } else {
      args.operatorCidrs.forEach((c) =>
        ingress("hosts", this.hosts, `ssh-${cidrId(c)}`, 22, { cidr: c }, "SSH from operators"),
      );
    }
    // Hosts -> database, AWS APIs and Debian mirrors.
    egress("hosts", this.hosts, "db", 5432, { group: this.db }, "PostgreSQL");
    ingress("db", this.db, "hosts", 5432, { group: this.hosts }, "PostgreSQL from the hosts");
    if (this.cache) {
      egress("hosts", this.hosts, "cache", REDIS_PORT, { group: this.cache }, "Redis (TLS)");
      ingress("cache", this.cache, "hosts", REDIS_PORT, { group: this.hosts }, "Redis from the hosts");
    }
    egress("hosts", this.hosts, "https", 443, { cidr: WORLD }, "AWS APIs (SSM, S3) and packages");
    egress("hosts", this.hosts, "http", 80, { cidr: WORLD }, "Debian mirrors");

    this.registerOutputs({
      alb: this.alb.id,
      hosts: this.hosts.id,
      db: this.db.id,
      bastion: this.bastion?.id,
      cache: this.cache?.id,
    });
  }
}
