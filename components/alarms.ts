import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { COLOURS, Colour } from "./config";

export interface AlarmThresholds {
  /** 5XX answers the load balancer itself gives (no healthy target, timeouts) per 5 minutes. */
  elb5xxPer5Minutes: number;
  /** 5XX answers of the app per 5 minutes. */
  target5xxPer5Minutes: number;
  /** Average database CPU over 15 minutes, in percent. */
  dbCpuPercent: number;
  /** Free database storage below this fraction of the allocated storage. */
  dbFreeStorageFraction: number;
  /** Average Redis engine CPU over 15 minutes, in percent. */
  cacheCpuPercent: number;
  /** Redis memory used, in percent of its maxmemory. */
  cacheMemoryPercent: number;
}

export const DEFAULT_THRESHOLDS: AlarmThresholds = {
  elb5xxPer5Minutes: 10,
  target5xxPer5Minutes: 10,
  dbCpuPercent: 80,
  dbFreeStorageFraction: 0.1,
  cacheCpuPercent: 80,
  cacheMemoryPercent: 80,
};

export interface AlarmsArgs {
  /**
   * Key that encrypts the topic. CloudWatch can publish to an encrypted topic only when the
   * key's policy lets `cloudwatch.amazonaws.com` use it (kms:Decrypt, kms:GenerateDataKey*);
   * otherwise the alarms fire and the mail never comes.
   */
  kmsKeyArn: pulumi.Input<string>;
  /** Where the alarms go; no subscription without it. The address must confirm AWS's mail. */
  email?: pulumi.Input<string>;
  /** The stack's region (the alarms' ARNs, in the topic policy). */
  region: string;
  /** `arnSuffix` of the load balancer (app/<name>/<id>), its CloudWatch dimension. */
  albArnSuffix: pulumi.Input<string>;
  /** `arnSuffix` of each colour's target group. */
  targetGroupArnSuffixes: Record<Colour, pulumi.Input<string>>;
  /**
   * Colours whose slot holds a release: each gets an unhealthy-host alarm. Deliberately not the
   * live colour: a rollback flips `live` and must change no alarm, and the idle colour's group
   * (no listener, so no health checks and no data) stays quiet by treating missing data as fine.
   */
  releasedColours: readonly Colour[];
  dbInstanceIdentifier: pulumi.Input<string>;
  dbAllocatedStorageGib: pulumi.Input<number>;
  /** The Redis node's cache cluster id, when the stack has Redis (components/cache.ts). */
  cacheClusterId?: pulumi.Input<string>;
  thresholds?: Partial<AlarmThresholds>;
}

const GIB = 1024 ** 3;

/**
 * CloudWatch alarms on what stops the site, to an encrypted SNS topic (and an email address):
 * 5XX from the load balancer and from the app, unhealthy hosts per released colour, database
 * CPU and free storage. Each alarm notifies when it fires and when it recovers.
 */
export class Alarms extends pulumi.ComponentResource {
  readonly topic: aws.sns.Topic;
  readonly alarms: aws.cloudwatch.MetricAlarm[] = [];

  constructor(name: string, args: AlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:alarms:Alarms", name, {}, opts);
    const parent = { parent: this };
    const t = { ...DEFAULT_THRESHOLDS, ...args.thresholds };
    const unknownColours = args.releasedColours.filter((c) => !COLOURS.includes(c));
    if (unknownColours.length) throw new pulumi.ResourceError(`unknown colours: ${unknownColours.join(", ")}`, this);

    this.topic = new aws.sns.Topic(`${name}-topic`, { kmsMasterKeyId: args.kmsKeyArn }, parent);

    // Only this component's alarms may publish: CloudWatch acting for them, nobody else.
    const partition = aws.getPartitionOutput({}, parent).partition;
    const account = aws.getCallerIdentityOutput({}, parent).accountId;
    new aws.sns.TopicPolicy(
      `${name}-topic-policy`,
      {
        arn: this.topic.arn,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "CloudWatchAlarmsOfThisEnvironment",
              Effect: "Allow",
              Principal: { Service: "cloudwatch.amazonaws.com" },
              Action: "sns:Publish",
              Resource: this.topic.arn,
              Condition: {
                ArnLike: {
                  "aws:SourceArn": pulumi.interpolate`arn:${partition}:cloudwatch:${args.region}:${account}:alarm:${name}-*`,
                },
                StringEquals: { "aws:SourceAccount": account },
              },
            },
          ],
        }),
      },
      parent,
    );

    if (args.email !== undefined) {
      new aws.sns.TopicSubscription(
        `${name}-email`,
        { topic: this.topic.arn, protocol: "email", endpoint: args.email },
        parent,
      );
    }

    const actions = [this.topic.arn];
    const alarm = (id: string, description: string, a: aws.cloudwatch.MetricAlarmArgs) => {
      const r = new aws.cloudwatch.MetricAlarm(
        `${name}-${id}`,
        { alarmDescription: description, alarmActions: actions, okActions: actions, ...a },
        parent,
      );
      this.alarms.push(r);
      return r;
    };
    const alb = (metricName: string, dimensions: Record<string, pulumi.Input<string>>) => ({
      namespace: "AWS/ApplicationELB",
      metricName,
      dimensions,
    });

    // The load balancer reports nothing while no request comes in: quiet is not an outage.
    alarm("alb-5xx", "The load balancer answered 5XX (no healthy target, timeouts). Check both colours' targets.", {
      ...alb("HTTPCode_ELB_5XX_Count", { LoadBalancer: args.albArnSuffix }),
      statistic: "Sum",
      period: 300,
      evaluationPeriods: 1,
      threshold: t.elb5xxPer5Minutes,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      treatMissingData: "notBreaching",
    });
    alarm("target-5xx", "The app answered 5XX. A bad release? `npm run rollback` flips back to the other colour.", {
      ...alb("HTTPCode_Target_5XX_Count", { LoadBalancer: args.albArnSuffix }),
      statistic: "Sum",
      period: 300,
      evaluationPeriods: 1,
      threshold: t.target5xxPer5Minutes,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      treatMissingData: "notBreaching",
    });
    for (const colour of COLOURS.filter((c) => args.releasedColours.includes(c))) {
      alarm(`unhealthy-${colour}`, `A host's ${colour} slot fails its health check for 3 minutes.`, {
        ...alb("UnHealthyHostCount", {
          TargetGroup: args.targetGroupArnSuffixes[colour],
          LoadBalancer: args.albArnSuffix,
        }),
        statistic: "Maximum",
        period: 60,
        evaluationPeriods: 3,
        threshold: 0,
        comparisonOperator: "GreaterThanThreshold",
        treatMissingData: "notBreaching",
      });
    }

    // A database that stops reporting is itself a problem: missing data keeps the last state.
    const rds = (metricName: string) => ({
      namespace: "AWS/RDS",
      metricName,
      dimensions: { DBInstanceIdentifier: args.dbInstanceIdentifier },
      treatMissingData: "missing",
    });
    alarm("db-cpu", `Database CPU above ${t.dbCpuPercent}% for 15 minutes.`, {
      ...rds("CPUUtilization"),
      statistic: "Average",
      period: 300,
      evaluationPeriods: 3,
      threshold: t.dbCpuPercent,
      comparisonOperator: "GreaterThanThreshold",
    });
    alarm(
      "db-storage",
      `Database free storage below ${t.dbFreeStorageFraction * 100}% of the allocated storage (greenlight:dbAllocatedStorage).`,
      {
        ...rds("FreeStorageSpace"),
        statistic: "Minimum",
        period: 300,
        evaluationPeriods: 1,
        threshold: pulumi
          .output(args.dbAllocatedStorageGib)
          .apply((gib) => Math.floor(gib * GIB * t.dbFreeStorageFraction)),
        comparisonOperator: "LessThanThreshold",
      },
    );

    // Redis: the Celery broker. A full cache refuses new tasks (and evicts what has a TTL); a
    // node that stops reporting is itself a problem.
    if (args.cacheClusterId !== undefined) {
      const cache = (metricName: string) => ({
        namespace: "AWS/ElastiCache",
        metricName,
        dimensions: { CacheClusterId: args.cacheClusterId! },
        treatMissingData: "missing",
      });
      alarm("cache-cpu", `Redis engine CPU above ${t.cacheCpuPercent}% for 15 minutes.`, {
        ...cache("EngineCPUUtilization"),
        statistic: "Average",
        period: 300,
        evaluationPeriods: 3,
        threshold: t.cacheCpuPercent,
        comparisonOperator: "GreaterThanThreshold",
      });
      alarm(
        "cache-memory",
        `Redis memory above ${t.cacheMemoryPercent}% of its maxmemory: tasks queue faster than the workers take them, or greenlight:redisNodeType is too small.`,
        {
          ...cache("DatabaseMemoryUsagePercentage"),
          statistic: "Maximum",
          period: 300,
          evaluationPeriods: 1,
          threshold: t.cacheMemoryPercent,
          comparisonOperator: "GreaterThanThreshold",
        },
      );
      alarm("cache-evictions", "Redis evicted keys: it is out of memory.", {
        ...cache("Evictions"),
        statistic: "Sum",
        period: 300,
        evaluationPeriods: 1,
        threshold: 0,
        comparisonOperator: "GreaterThanThreshold",
      });
    }

    this.registerOutputs({ topicArn: this.topic.arn, alarms: this.alarms.map((a) => a.name) });
  }
}
