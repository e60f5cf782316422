import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { COLOURS, Colour, SLOT_PORTS } from "./config";
import { COLOUR_TAG, LISTENER_TAG } from "./constants";

/** TLS 1.3 with 1.2 fallback: the modern policy AWS recommends for ALBs. */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

export interface LoadBalancerArgs {
  vpcId: pulumi.Input<string>;
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  instanceIds: pulumi.Input<string>[];
  live: Colour;
  healthPath: string;
  domain?: { name: string; zone: string };
  testListenerPort?: number;
  deletionProtection: boolean;
  /** The steps that must succeed before traffic moves: every activation of the live colour. */
  cutoverAfter: pulumi.Resource[];
  /** The steps after which the test listener may show the idle colour. */
  testAfter: pulumi.Resource[];
}

/**
 * The ALB with one target group per colour, each registering every host on that colour's slot
 * port. The forwarding listener points at the live colour's group and depends on every
 * activation of that colour, so a failed release never moves traffic. Rolling back is a change
 * of this one listener.
 */
export class LoadBalancer extends pulumi.ComponentResource {
  readonly alb: aws.lb.LoadBalancer;
  readonly targetGroups: Record<Colour, aws.lb.TargetGroup>;
  /** The listener that carries the site's traffic (443 with a certificate, else 80). */
  readonly forward: aws.lb.Listener;
  readonly testListener?: aws.lb.Listener;
  readonly url: pulumi.Output<string>;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:loadBalancer:LoadBalancer", name, {}, opts);
    const parent = { parent: this };
    const idle: Colour = args.live === "blue" ? "green" : "blue";

    this.alb = new aws.lb.LoadBalancer(
      name,
      {
        loadBalancerType: "application",
        internal: false,
        subnets: args.subnetIds,
        securityGroups: [args.securityGroupId],
        dropInvalidHeaderFields: true,
        enableDeletionProtection: args.deletionProtection,
        idleTimeout: 60,
      },
      parent,
    );

    this.targetGroups = {} as Record<Colour, aws.lb.TargetGroup>;
    for (const colour of COLOURS) {
      const tg = new aws.lb.TargetGroup(
        `${name}-${colour}`,
        {
          vpcId: args.vpcId,
          port: SLOT_PORTS[colour],
          protocol: "HTTP",
          targetType: "instance",
          deregistrationDelay: 30,
          healthCheck: {
            enabled: true,
            path: args.healthPath,
            port: "traffic-port",
            protocol: "HTTP",
            matcher: "200",
            interval: 10,
            timeout: 5,
            healthyThreshold: 2,
            unhealthyThreshold: 3,
          },
          tags: { [COLOUR_TAG]: colour },
        },
        parent,
      );
      this.targetGroups[colour] = tg;
      args.instanceIds.forEach(
        (instanceId, i) =>
          new aws.lb.TargetGroupAttachment(
            `${name}-${colour}-${i}`,
            { targetGroupArn: tg.arn, targetId: instanceId, port: SLOT_PORTS[colour] },
            parent,
          ),
      );
    }

    let certificateArn: pulumi.Output<string> | undefined;
    if (args.domain) {
      const zone = aws.route53.getZoneOutput({ name: args.domain.zone, privateZone: false }, parent);
      const cert = new aws.acm.Certificate(
        `${name}-cert`,
        { domainName: args.domain.name, validationMethod: "DNS" },
        parent,
      );
      const validation = cert.domainValidationOptions[0];
      const record = new aws.route53.Record(
        `${name}-cert-validation`,
        {
          zoneId: zone.zoneId,
          name: validation.resourceRecordName,
          type: validation.resourceRecordType,
          records: [validation.resourceRecordValue],
          ttl: 300,
          allowOverwrite: true,
        },
        parent,
      );
      certificateArn = new aws.acm.CertificateValidation(
        `${name}-cert-validation`,
        { certificateArn: cert.arn, validationRecordFqdns: [record.fqdn] },
        parent,
      ).certificateArn;
      new aws.route53.Record(
        `${name}-alias`,
        {
          zoneId: zone.zoneId,
          name: args.domain.name,
          type: "A",
          aliases: [{ name: this.alb.dnsName, zoneId: this.alb.zoneId, evaluateTargetHealth: true }],
        },
        parent,
      );
    }

    const forwardTo = (colour: Colour) => [{ type: "forward", targetGroupArn: this.targetGroups[colour].arn }];
    const cutover = { parent: this, dependsOn: args.cutoverAfter };
    if (certificateArn) {
      new aws.lb.Listener(
        `${name}-http`,
        {
          loadBalancerArn: this.alb.arn,
          port: 80,
          protocol: "HTTP",
          defaultActions: [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }],
          tags: { [LISTENER_TAG]: "redirect" },
        },
        parent,
      );
      this.forward = new aws.lb.Listener(
        `${name}-https`,
        {
          loadBalancerArn: this.alb.arn,
          port: 443,
          protocol: "HTTPS",
          sslPolicy: TLS_POLICY,
          certificateArn,
          defaultActions: forwardTo(args.live),
          tags: { [LISTENER_TAG]: "live" },
        },
        cutover,
      );
    } else {
      this.forward = new aws.lb.Listener(
        `${name}-http`,
        {
          loadBalancerArn: this.alb.arn,
          port: 80,
          protocol: "HTTP",
          defaultActions: forwardTo(args.live),
          tags: { [LISTENER_TAG]: "live" },
        },
        cutover,
      );
    }

    if (args.testListenerPort !== undefined) {
      this.testListener = new aws.lb.Listener(
        `${name}-test`,
        {
          loadBalancerArn: this.alb.arn,
          port: args.testListenerPort,
          protocol: certificateArn ? "HTTPS" : "HTTP",
          sslPolicy: certificateArn ? TLS_POLICY : undefined,
          certificateArn,
          defaultActions: forwardTo(idle),
          tags: { [LISTENER_TAG]: "test" },
        },
        { parent: this, dependsOn: args.testAfter },
      );
    }

    this.url = args.domain
      ? pulumi.output(`https://${args.domain.name}`)
      : pulumi.interpolate`http://${this.alb.dnsName}`;
    this.registerOutputs({ url: this.url, dnsName: this.alb.dnsName });
  }
}
