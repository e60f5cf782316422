import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { formatIpv4, parseCidr } from "./config";

export interface SubnetPlan {
  public: string[];
  private: string[];
}

function formatCidr(addr: number, prefix: number): string {
  return `${formatIpv4(addr)}/${prefix}`;
}

/**
 * Carves the VPC into sixteen equal blocks: public subnets take blocks 0..azCount-1, private
 * subnets blocks 8..8+azCount-1, so adding a zone later never renumbers an existing subnet.
 * Address math on ipaddr.js; the plan itself is ours because awsx's Vpc is a plugin-backed component that cannot run under mocks.
 */
export function planSubnets(vpcCidr: string, azCount: number): SubnetPlan {
  const parsed = parseCidr(vpcCidr);
  if (!parsed) throw new Error(`not an IPv4 CIDR: ${vpcCidr}`);
  if (azCount < 1 || azCount > 8) throw new Error(`azCount must be 1..8, got ${azCount}`);
  const [base, prefix] = parsed;
  const sub = prefix + 4;
  if (sub > 28) throw new Error(`VPC ${vpcCidr} is too small to split into subnets`);
  const size = 2 ** (32 - sub);
  const block = (i: number) => formatCidr((base + i * size) >>> 0, sub);
  return {
    public: Array.from({ length: azCount }, (_, i) => block(i)),
    private: Array.from({ length: azCount }, (_, i) => block(8 + i)),
  };
}

export interface NetworkArgs {
  cidr: string;
  azCount: number;
  /** Give private subnets a NAT gateway (hosts live there and need outbound access). */
  nat: boolean;
  region: string;
}

/** VPC, public and private subnets over 2-3 zones, IGW, routes, optional NAT, S3 endpoint. */
export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly cidr: string;
  readonly publicSubnetIds: pulumi.Output<string>[];
  readonly privateSubnetIds: pulumi.Output<string>[];
  readonly natGateway?: aws.ec2.NatGateway;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:network:Network", name, {}, opts);
    const parent = { parent: this };
    const plan = planSubnets(args.cidr, args.azCount);
    this.cidr = args.cidr;

    const zones = aws.getAvailabilityZonesOutput({ state: "available" }, parent).names;
    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      {
        cidrBlock: args.cidr,
        enableDnsHostnames: true,
        enableDnsSupport: true,
        tags: { Name: `${name}-vpc` },
      },
      parent,
    );
    this.vpcId = vpc.id;

    // The VPC's default security group allows all traffic between its members; nothing
    // uses it, so strip its rules (CIS AWS 5.4).
    new aws.ec2.DefaultSecurityGroup(`${name}-default-sg`, { vpcId: vpc.id, tags: { Name: `${name}-unused` } }, parent);

    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: { Name: `${name}-igw` } }, parent);

    const subnet = (kind: "public" | "private", cidr: string, i: number) =>
      new aws.ec2.Subnet(
        `${name}-${kind}-${i}`,
        {
          vpcId: vpc.id,
          cidrBlock: cidr,
          availabilityZone: zones.apply((z) => {
            if (z.length < args.azCount) {
              throw new pulumi.RunError(
                `${args.region} offers ${z.length} availability zones; greenlight:azCount asks for ${args.azCount}`,
              );
            }
            return z[i];
          }),
          mapPublicIpOnLaunch: false,
          tags: { Name: `${name}-${kind}-${i}`, tier: kind },
        },
        parent,
      );
    const publicSubnets = plan.public.map((c, i) => subnet("public", c, i));
    const privateSubnets = plan.private.map((c, i) => subnet("private", c, i));
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.privateSubnetIds = privateSubnets.map((s) => s.id);

    const publicRt = new aws.ec2.RouteTable(
      `${name}-public-rt`,
      { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }], tags: { Name: `${name}-public` } },
      parent,
    );
    publicSubnets.forEach(
      (s, i) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-public-rta-${i}`,
          { subnetId: s.id, routeTableId: publicRt.id },
          parent,
        ),
    );

    let privateRoutes: aws.types.input.ec2.RouteTableRoute[] = [];
    if (args.nat) {
      // One NAT gateway (in the first zone): hosts need outbound access only for packages and
      // AWS APIs, and S3 goes through the free gateway endpoint below. A second NAT doubles
      // the cost for a failure mode that does not stop serving.
      const eip = new aws.ec2.Eip(`${name}-nat-eip`, { domain: "vpc", tags: { Name: `${name}-nat` } }, parent);
      this.natGateway = new aws.ec2.NatGateway(
        `${name}-nat`,
        { allocationId: eip.id, subnetId: publicSubnets[0].id, tags: { Name: `${name}-nat` } },
        { parent: this, dependsOn: [igw] },
      );
      privateRoutes = [{ cidrBlock: "0.0.0.0/0", natGatewayId: this.natGateway.id }];
    }
    const privateRt = new aws.ec2.RouteTable(
      `${name}-private-rt`,
      { vpcId: vpc.id, routes: privateRoutes, tags: { Name: `${name}-private` } },
      parent,
    );
    privateSubnets.forEach(
      (s, i) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-private-rta-${i}`,
          { subnetId: s.id, routeTableId: privateRt.id },
          parent,
        ),
    );

    new aws.ec2.VpcEndpoint(
      `${name}-s3-endpoint`,
      {
        vpcId: vpc.id,
        serviceName: `com.amazonaws.${args.region}.s3`,
        vpcEndpointType: "Gateway",
        routeTableIds: [publicRt.id, privateRt.id],
        tags: { Name: `${name}-s3` },
      },
      parent,
    );

    this.registerOutputs({
      vpcId: this.vpcId,
      publicSubnetIds: this.publicSubnetIds,
      privateSubnetIds: this.privateSubnetIds,
    });
  }
}
