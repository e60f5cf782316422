// What the program's AWS look-ups (invokes) answer in the unit tests' mocks and in the
// rehearsal's aws stand-in: one account, one region, a Debian 12 AMI, the domain's zone.
export const ACCOUNT = "123456789012";
export const REGION = "eu-west-1";

export function awsInvoke(token: string): Record<string, unknown> {
  switch (token) {
    case "aws:index/getAvailabilityZones:getAvailabilityZones":
      return {
        names: [`${REGION}a`, `${REGION}b`, `${REGION}c`],
        zoneIds: ["euw1-az1", "euw1-az2", "euw1-az3"],
        id: REGION,
      };
    case "aws:index/getCallerIdentity:getCallerIdentity":
      return { accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/test`, userId: "AIDTEST", id: ACCOUNT };
    case "aws:index/getPartition:getPartition":
      return { partition: "aws", dnsSuffix: "amazonaws.com", id: "aws" };
    case "aws:index/getRegion:getRegion":
      return { name: REGION, region: REGION, id: REGION };
    case "aws:ec2/getAmi:getAmi":
      return { id: "ami-0debian12amd64000", architecture: "x86_64", name: "debian-12-amd64-20261101-1234" };
    case "aws:route53/getZone:getZone":
      return { zoneId: "Z0EXAMPLEZONE", name: "example.com", id: "Z0EXAMPLEZONE" };
    default:
      throw new Error(`no stand-in for the AWS look-up ${token}`);
  }
}
