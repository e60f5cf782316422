// Alarms built on its own under mocks (see ci.test.ts for why the mocks are set in `before`).
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { Alarms, AlarmsArgs } from "../../components/alarms";
import { fakeEngine } from "./fakeEngine";

const ACCOUNT = "123456789012";
const TOPIC = "sns";
const promiseOf = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));

describe("Alarms (CloudWatch to SNS)", function () {
  const created: pulumi.runtime.MockResourceArgs[] = [];
  const urns: Record<string, string> = {};
  const base: AlarmsArgs = {
    kmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/env-key",
    region: "eu-west-1",
    albArnSuffix: "app/qa-alb-1234567/50dc6c495c0c9188",
    targetGroupArnSuffixes: {
      blue: "targetgroup/qa-alb-blue-abc/73e2d6bc24d8a067",
      green: "targetgroup/qa-alb-green-def/b5ea8e1ae8a1c4b7",
    },
    releasedColours: [],
    dbInstanceIdentifier: "qa-db-postgres-1234567",
    dbAllocatedStorageGib: 20,
  };
  const of = (component: string, type: string) =>
    created.filter((r) => r.type === type && r.name.startsWith(`${component}-`));
  const alarms = (component: string) =>
    Object.fromEntries(
      of(component, "aws:cloudwatch/metricAlarm:MetricAlarm").map((r) => [
        r.name.slice(component.length + 1),
        r.inputs,
      ]),
    );
  const topicArn = (component: string) => `arn:aws:${TOPIC}:eu-west-1:${ACCOUNT}:${component}-topic`;

  before(async function () {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          created.push(args);
          const arn = `arn:aws:${args.type.split(":")[1].split("/")[0]}:eu-west-1:${ACCOUNT}:${args.name}`;
          return { id: `${args.name}-id`, state: { ...args.inputs, arn, name: args.name } };
        },
        // The program's invokes, as the unit tests answer them (unknown tokens throw).
        call: (args) => fakeEngine.call(args.token, args.inputs),
      },
      "greenlight",
      "qa",
      false,
    );
    const build = async (name: string, args: AlarmsArgs) => {
      const a = new Alarms(name, args);
      urns[name] = await promiseOf(a.topic.urn);
    };
    await build("none-alarms", base);
    await build("blue-alarms", { ...base, releasedColours: ["blue"], email: "ops@example.com" });
    await build("both-alarms", { ...base, releasedColours: ["green", "blue"], dbAllocatedStorageGib: 50 });
    await pulumi.runtime.disconnect();
  });

  it("publishes to an SNS topic encrypted with the given key, and mails only when an address is given", () => {
    for (const c of ["none-alarms", "blue-alarms", "both-alarms"]) {
      const [topic] = of(c, "aws:sns/topic:Topic");
      assert.equal(topic.inputs.kmsMasterKeyId, base.kmsKeyArn);
      assert.equal(urns[c].split("::")[2], "greenlight:alarms:Alarms$aws:sns/topic:Topic", "a child of the component");
    }
    const subs = created.filter((r) => r.type === "aws:sns/topicSubscription:TopicSubscription");
    assert.deepEqual(
      subs.map((s) => [s.name, s.inputs.protocol, s.inputs.endpoint, s.inputs.topic]),
      [["blue-alarms-email", "email", "ops@example.com", topicArn("blue-alarms")]],
    );
  });

  it("only this component's alarms, through CloudWatch, may publish to the topic", () => {
    const [policy] = of("blue-alarms", "aws:sns/topicPolicy:TopicPolicy");
    const doc = JSON.parse(policy.inputs.policy);
    assert.deepEqual(doc.Statement, [
      {
        Sid: "CloudWatchAlarmsOfThisEnvironment",
        Effect: "Allow",
        Principal: { Service: "cloudwatch.amazonaws.com" },
        Action: "sns:Publish",
        Resource: topicArn("blue-alarms"),
        Condition: {
          ArnLike: { "aws:SourceArn": `arn:aws:cloudwatch:eu-west-1:${ACCOUNT}:alarm:blue-alarms-*` },
          StringEquals: { "aws:SourceAccount": ACCOUNT },
        },
      },
    ]);
  });

  it("every alarm notifies the topic when it fires and when it recovers", () => {
    const all = of("both-alarms", "aws:cloudwatch/metricAlarm:MetricAlarm");
    assert.equal(all.length, 6);
    for (const a of all) {
      assert.deepEqual(a.inputs.alarmActions, [topicArn("both-alarms")], a.name);
      assert.deepEqual(a.inputs.okActions, [topicArn("both-alarms")], a.name);
      assert.ok(a.inputs.alarmDescription, a.name);
    }
  });

  it("5XX from the load balancer and from the app, summed over 5 minutes; no traffic is not an outage", () => {
    const a = alarms("none-alarms");
    for (const [id, metric] of [
      ["alb-5xx", "HTTPCode_ELB_5XX_Count"],
      ["target-5xx", "HTTPCode_Target_5XX_Count"],
    ]) {
      assert.equal(a[id].namespace, "AWS/ApplicationELB");
      assert.equal(a[id].metricName, metric);
      assert.deepEqual(a[id].dimensions, { LoadBalancer: base.albArnSuffix });
      assert.equal(a[id].statistic, "Sum");
      assert.equal(a[id].period * a[id].evaluationPeriods, 300);
      assert.equal(a[id].threshold, 10);
      assert.equal(a[id].treatMissingData, "notBreaching");
    }
  });

  it("one unhealthy-host alarm per colour holding a release, on that colour's target group, independent of `live`", () => {
    assert.deepEqual(
      Object.keys(alarms("none-alarms")).filter((k) => k.startsWith("unhealthy")),
      [],
    );
    assert.deepEqual(
      Object.keys(alarms("blue-alarms")).filter((k) => k.startsWith("unhealthy")),
      ["unhealthy-blue"],
    );
    const both = alarms("both-alarms");
    assert.deepEqual(
      Object.keys(both).filter((k) => k.startsWith("unhealthy")),
      ["unhealthy-blue", "unhealthy-green"],
    );
    for (const colour of ["blue", "green"] as const) {
      const u = both[`unhealthy-${colour}`];
      assert.equal(u.metricName, "UnHealthyHostCount");
      assert.deepEqual(u.dimensions, {
        TargetGroup: base.targetGroupArnSuffixes[colour],
        LoadBalancer: base.albArnSuffix,
      });
      assert.equal(u.comparisonOperator, "GreaterThanThreshold");
      assert.equal(u.threshold, 0);
      // The idle colour's group has no listener, hence no health checks and no data.
      assert.equal(u.treatMissingData, "notBreaching");
    }
    // Releasing into the other slot leaves an existing colour's alarm as it was.
    const withoutActions = ({ alarmActions: _a, okActions: _o, ...rest }: Record<string, unknown>) => rest;
    assert.deepEqual(withoutActions(alarms("blue-alarms")["unhealthy-blue"]), withoutActions(both["unhealthy-blue"]));
  });

  it("database CPU above 80% for 15 minutes and free storage below 10% of the allocated GiB", () => {
    for (const [c, gib] of [
      ["none-alarms", 20],
      ["both-alarms", 50],
    ] as const) {
      const a = alarms(c);
      assert.equal(a["db-cpu"].namespace, "AWS/RDS");
      assert.equal(a["db-cpu"].metricName, "CPUUtilization");
      assert.deepEqual(a["db-cpu"].dimensions, { DBInstanceIdentifier: base.dbInstanceIdentifier });
      assert.equal(a["db-cpu"].statistic, "Average");
      assert.equal(a["db-cpu"].period * a["db-cpu"].evaluationPeriods, 900);
      assert.equal(a["db-cpu"].threshold, 80);
      assert.equal(a["db-cpu"].comparisonOperator, "GreaterThanThreshold");
      assert.equal(a["db-storage"].metricName, "FreeStorageSpace");
      assert.equal(a["db-storage"].statistic, "Minimum");
      assert.equal(a["db-storage"].comparisonOperator, "LessThanThreshold");
      assert.equal(a["db-storage"].threshold, Math.floor(gib * 1024 ** 3 * 0.1), `${gib} GiB`);
    }
  });
});
